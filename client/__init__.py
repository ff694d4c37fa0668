"""The HTTP client for the omniflow API (sync and async, typed results)."""
