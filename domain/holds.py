"""Order validation: the rules that decide whether an order waits for a person before it
is sourced. Each hold is an exception wait in the order workflow (docs/architecture.md,
"Exception queues"); this module only says *which* holds and *why*, never how long or who.

Three checks, each a small table so a reviewer can read the policy without the code:

- **address** (`validate_address`): one row of `COUNTRY_RULES` per country with its own
  postal code and region format; every country needs name, line1, city and an ISO 3166
  alpha-2 country. Each missing or malformed field is one `AddressProblem` naming the field,
  so the person fixing it (and the channel reading the hold) sees all of them at once.
- **fraud** (`fraud_score`): `FRAUD_RULES` rows of (name, predicate, points); the score is
  the sum of the points of the rows that apply, and the order is held for review at
  `FraudRules.hold_at`. Rules only add points, so a score is explained by its reasons.
- **payment** (`payment_hold`): money not yet authorized is not shipped against.

`holds_for` turns the three results into hold kinds in a fixed order (`HOLD_ORDER`);
`HOLDS` gives each kind its allowed actions and the default action at the policy limit."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# -- address ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """A ship-to (or billing) address as the channel sent it. Missing text is ""."""

    name: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""  # state / province / county code where the country has one
    postal_code: str = ""
    country: str = ""  # ISO 3166-1 alpha-2, e.g. "US"
    lat: float | None = None
    lon: float | None = None


TEXT_FIELDS = ("name", "line1", "line2", "city", "region", "postal_code", "country")


def address_from(data: Mapping[str, object] | None) -> Address:
    """An Address from stored or submitted JSON: missing text is "", coordinates are numbers
    or None. Raises ValueError or TypeError when a coordinate is not a number."""
    data = data or {}
    text = {name: "" if data.get(name) is None else str(data.get(name)) for name in TEXT_FIELDS}
    lat, lon = data.get("lat"), data.get("lon")
    return Address(
        **text,
        lat=None if lat is None else float(lat),  # type: ignore[arg-type]
        lon=None if lon is None else float(lon),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class AddressProblem:
    field: str  # the Address field at fault, as the API names it (ship_to.<field>)
    problem: str  # "missing" | "malformed"
    message: str


@dataclass(frozen=True)
class CountryRule:
    """How one country writes its postal code and region. `postal` is matched against the
    upper-cased, trimmed code; `regions` empty means the region is free text (or absent)."""

    postal: re.Pattern[str] | None  # None: any postal code (or none) is accepted
    postal_example: str = ""
    regions: frozenset[str] = frozenset()
    region_name: str = "region"


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


US_STATES = _codes(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY "
    "AS GU MP PR VI UM AA AE AP"  # territories and military post offices ship too
)
CA_PROVINCES = _codes("AB BC MB NB NL NS NT NU ON PE QC SK YT")

# Canada Post: no D F I O Q U anywhere, no W Z as the first letter.
_CA_POSTAL = r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d"
# Royal Mail's outward + inward code (BS 7666), with the single special case GIR 0AA.
_GB_POSTAL = r"GIR ?0AA|[A-PR-UWYZ](?:\d[\dA-HJKPSTUW]?|[A-HK-Y]\d[\dABEHMNPRV-Y]?) ?\d[ABD-HJLNP-UW-Z]{2}"

COUNTRY_RULES: dict[str, CountryRule] = {
    "US": CountryRule(re.compile(r"\d{5}(?:-\d{4})?"), "12345 or 12345-6789", US_STATES, "state"),
    "CA": CountryRule(re.compile(_CA_POSTAL), "A1A 1A1", CA_PROVINCES, "province"),
    "GB": CountryRule(re.compile(_GB_POSTAL), "SW1A 1AA"),
    "DE": CountryRule(re.compile(r"\d{5}"), "10115"),
    "FR": CountryRule(re.compile(r"\d{5}"), "75001"),
}
DEFAULT_COUNTRY_RULE = CountryRule(postal=None)  # postal code optional, format unknown to us

# ISO 3166-1 alpha-2, the officially assigned codes: a typo ("UK", "USA") is malformed.
ISO_COUNTRIES = _codes(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO
    DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU
    GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW
    KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU
    MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
    PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA
    ZM ZW"""
)

REQUIRED_FIELDS = ("name", "line1", "city")


def _clean(value: str | None) -> str:
    return (value or "").strip()


def validate_address(ship_to: Address) -> list[AddressProblem]:
    """Every problem of the address, in field order; [] means it can be shipped to.

    Codes are compared trimmed and upper-cased ("sw1a 1aa" is a good GB postcode): a
    carrier reads them that way, and holding an order for letter case wastes a person."""
    problems = [
        AddressProblem(name, "missing", f"{name} is required")
        for name in REQUIRED_FIELDS
        if not _clean(getattr(ship_to, name))
    ]
    country = _clean(ship_to.country).upper()
    rule = COUNTRY_RULES.get(country, DEFAULT_COUNTRY_RULE)
    problems.extend(_region_problems(ship_to, country, rule))
    problems.extend(_postal_problems(ship_to, country, rule))
    problems.extend(_country_problems(ship_to, country))
    problems.extend(_coordinate_problems(ship_to))
    return problems


def _region_problems(ship_to: Address, country: str, rule: CountryRule) -> list[AddressProblem]:
    """The region, where the country has a list of them (US states, CA provinces)."""
    region = _clean(ship_to.region).upper()
    if not rule.regions:
        return []
    if not region:
        return [
            AddressProblem("region", "missing", f"region is required in {country} (the {rule.region_name})")
        ]
    if region not in rule.regions:
        return [
            AddressProblem(
                "region",
                "malformed",
                f"region {ship_to.region!r} is not a {country} {rule.region_name} code",
            )
        ]
    return []


def _postal_problems(ship_to: Address, country: str, rule: CountryRule) -> list[AddressProblem]:
    """The postal code, where the country has a format we know."""
    postal = _clean(ship_to.postal_code).upper()
    if rule.postal is None:
        return []
    if not postal:
        return [AddressProblem("postal_code", "missing", f"postal_code is required in {country}")]
    if not rule.postal.fullmatch(postal):
        return [
            AddressProblem(
                "postal_code",
                "malformed",
                f"postal_code {ship_to.postal_code!r} is not a {country} postal code (like {rule.postal_example})",
            )
        ]
    return []


def _country_problems(ship_to: Address, country: str) -> list[AddressProblem]:
    if not country:
        return [AddressProblem("country", "missing", "country is required")]
    if country not in ISO_COUNTRIES:
        return [
            AddressProblem(
                "country", "malformed", f"country {ship_to.country!r} is not an ISO 3166 alpha-2 code"
            )
        ]
    return []


def _coordinate_problems(ship_to: Address) -> list[AddressProblem]:
    """Coordinates are optional, but sourcing measures distance with them: a half pair or
    a point off the globe would silently make every location "nearest"."""
    lat, lon = ship_to.lat, ship_to.lon
    if lat is None and lon is None:
        return []
    if lat is None or lon is None:
        missing = "lat" if lat is None else "lon"
        return [AddressProblem(missing, "missing", "lat and lon come together or not at all")]
    out: list[AddressProblem] = []
    if not -90.0 <= lat <= 90.0:
        out.append(AddressProblem("lat", "malformed", f"lat {lat} is outside -90..90"))
    if not -180.0 <= lon <= 180.0:
        out.append(AddressProblem("lon", "malformed", f"lon {lon} is outside -180..180"))
    return out


# -- fraud -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FraudSignals:
    """What the fraud rules look at, gathered by an activity before the rules run."""

    order_value: int  # minor units, everything the customer pays
    billing_country_differs: bool = False  # ship-to country != billing country
    billing_postal_differs: bool = False  # ship-to postal code != billing postal code
    orders_last_24h: int = 1  # this customer's orders in the last 24 h, this one included
    first_time_customer: bool = False
    express: bool = False


def billing_differences(ship_to: Address, billing: Address | None) -> tuple[bool, bool]:
    """(country differs, postal code differs). No billing address means nothing to compare."""
    if billing is None:
        return False, False

    def norm(value: str) -> str:
        return "".join(_clean(value).upper().split())

    return (
        norm(ship_to.country) != norm(billing.country),
        norm(ship_to.postal_code) != norm(billing.postal_code),
    )


@dataclass(frozen=True)
class FraudRules:
    """The thresholds of the fraud table (a channel or merchant may tune them)."""

    high_value: int = 50_000  # minor units
    very_high_value: int = 200_000
    busy_customer: int = 3  # orders in 24 h
    very_busy_customer: int = 6
    hold_at: int = 50  # score at which a person reviews the order


@dataclass(frozen=True)
class FraudRule:
    name: str
    applies: Callable[[FraudSignals, FraudRules], bool]
    points: int
    why: Callable[[FraudSignals, FraudRules], str]  # the reason a reviewer reads


# Points only add up, and every predicate is monotone in the order value, so more money
# never lowers the score. Rows stack: a 250 000 order scores high_value and very_high_value.
FRAUD_RULES: tuple[FraudRule, ...] = (
    FraudRule(
        "high_value",
        lambda s, r: s.order_value > r.high_value,
        30,
        lambda s, r: f"order value {s.order_value} over {r.high_value}",
    ),
    FraudRule(
        "very_high_value",
        lambda s, r: s.order_value > r.very_high_value,
        30,
        lambda s, r: f"order value {s.order_value} over {r.very_high_value}",
    ),
    FraudRule(
        "billing_country",
        lambda s, r: s.billing_country_differs,
        25,
        lambda s, r: "ships to another country than the billing address",
    ),
    FraudRule(
        "billing_postal_code",
        lambda s, r: s.billing_postal_differs and not s.billing_country_differs,
        10,
        lambda s, r: "ships to another postal code than the billing address",
    ),
    FraudRule(
        "busy_customer",
        lambda s, r: s.orders_last_24h >= r.busy_customer,
        20,
        lambda s, r: f"{s.orders_last_24h} orders in 24 h (>= {r.busy_customer})",
    ),
    FraudRule(
        "very_busy_customer",
        lambda s, r: s.orders_last_24h >= r.very_busy_customer,
        20,
        lambda s, r: f"{s.orders_last_24h} orders in 24 h (>= {r.very_busy_customer})",
    ),
    FraudRule(
        "new_customer_express",
        lambda s, r: s.first_time_customer and s.express,
        15,
        lambda s, r: "first-time customer asks for express shipping",
    ),
)


@dataclass(frozen=True)
class FraudAssessment:
    score: int
    reasons: list[str]  # one per rule that applied, "name +points: why", in table order
    hold: bool


def fraud_score(signals: FraudSignals, rules: FraudRules | None = None) -> FraudAssessment:
    """Sum of the points of every rule that applies; held for review at `rules.hold_at`.
    The postal-code row stays silent when the country differs: the country row already
    says the address is elsewhere, and one fact should not score twice."""
    rules = rules or FraudRules()
    score, reasons = 0, []
    for rule in FRAUD_RULES:
        if rule.applies(signals, rules):
            score += rule.points
            reasons.append(f"{rule.name} +{rule.points}: {rule.why(signals, rules)}")
    return FraudAssessment(score=score, reasons=reasons, hold=score >= rules.hold_at)


# -- payment ---------------------------------------------------------------------------

PAYMENT_CLEAR = frozenset({"authorized", "captured"})


def payment_hold(payment_status: str) -> bool:
    """Pending (or any status we do not know to be money) holds the order: we never ship
    against a payment that has not been authorized. Authorized and captured go ahead."""
    return payment_status.strip().lower() not in PAYMENT_CLEAR


# -- holds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldKind:
    kind: str  # the exception kind (API: GET /v1/exceptions `kind`)
    actions: tuple[str, ...]  # what a person may answer
    default_action: str  # what the workflow does at the policy limit


HOLDS: dict[str, HoldKind] = {
    "address_invalid": HoldKind("address_invalid", ("fix_address", "cancel"), "cancel"),
    "payment_pending": HoldKind("payment_pending", ("confirm_payment", "cancel"), "cancel"),
    "fraud_review": HoldKind("fraud_review", ("approve", "cancel"), "cancel"),
}

# Cheapest question first: a wrong address is fixed by the channel in minutes and may
# change the fraud signals; payment clears by itself; a fraud review costs an analyst's
# time, so they see an order that is otherwise ready to ship.
HOLD_ORDER: tuple[str, ...] = ("address_invalid", "payment_pending", "fraud_review")


def holds_for(
    address_problems: Sequence[AddressProblem], payment_status: str, fraud: FraudAssessment
) -> list[str]:
    """The hold kinds an order gets, in `HOLD_ORDER`; [] means go straight to sourcing."""
    due = {
        "address_invalid": bool(address_problems),
        "payment_pending": payment_hold(payment_status),
        "fraud_review": fraud.hold,
    }
    return [kind for kind in HOLD_ORDER if due[kind]]
