"""The API's read models: SELECTs and the responses built from their rows, one module per aggregate."""
