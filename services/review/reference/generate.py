"""Build reference data 2026.2: every row of 2026.1 unchanged, plus fictional rows of realistic shape.

Deterministic (fixed seed, no set iteration): ``python services/review/reference/generate.py`` from the
repo root writes the same file every time, and a unit test holds the file to this script.
Every enterprise name, credit code, brand, model code, certificate number and VIN is invented; the
shapes and volumes follow public reporting (DOMAIN.md). Only countries, cities and ports are real.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE_VERSION = "2026.1"
VERSION = "2026.2"
SEED = 20262
YEARS = (2026, 2027)

Row = dict[str, Any]

# Rows that licensectl/samples.py names: fixed here, never drawn at random.
QILIN_MOTOR = "91488787CL5R13E3HD"
QILIN_UNPRICED_MODEL = "QI7013BEV"
QILIN_WMI = "LKM"
QILIN_UNCOVERED_COUNTRY = "NZ"

TIER_CAPS = {"A": 12, "B": 6, "C": 3}
BASE_TIERS = {  # the 2026.1 manufacturers, by code
    QILIN_MOTOR: "A",
    "91257084XAHWBYUYE8": "A",
    "919305472L5KC8NPEJ": "B",
    "91101800RE5KJF3APE": "B",
    "91284904EX3M8KGM2W": "C",
    "916413411ML4AUQKTP": "B",
}
BASE_PREFIXES = {"Qilin": "QI", "QiStar": "QI", "Xingche": "XI", "XC Lux": "XC"}

# (brand stem, model-code prefix, tier, administrative division of the registered seat)
NEW_MANUFACTURERS = (
    ("Tianxuan", "TX", "A", "340200"),
    ("Kunlun", "KU", "A", "500000"),
    ("Zhuque", "ZQ", "A", "440300"),
    ("Qingluan", "QL", "B", "330200"),
    ("Baize", "BZ", "B", "420100"),
    ("Lanjing", "LJ", "B", "310115"),
    ("Feiyue", "FY", "B", "220100"),
    ("Yunque", "YQ", "B", "370200"),
    ("Xuanwu", "XW", "B", "610100"),
    ("Taihang", "TH", "B", "130600"),
    ("Songling", "SL", "C", "410100"),
    ("Minjiang", "MJ", "C", "350100"),
    ("Xingyao", "XY", "C", "510100"),
    ("Hanhai", "HH", "C", "360100"),
    ("Yaoguang", "YG", "C", "450200"),
    ("Jingwei", "JW", "C", "330100"),
    ("Chiyun", "CY", "C", "320500"),
    ("Luming", "LM", "C", "120116"),
)
MANUFACTURER_KINDS = ("Automobile", "New Energy Vehicle", "Motor", "Auto Group", "Electric Vehicle", "Smart Mobility")
SUB_BRANDS = ("Lux", "Go", "Pro", "Max")
DISTRIBUTOR_PLACES = (
    "Donghai", "Xijiang", "Tianshan", "Huanghe", "Bohai", "Nanling", "Qinling", "Taihu", "Dongting",
    "Poyang", "Heilong", "Changbai", "Wuyi", "Huangshan", "Emei", "Lushan", "Yandang", "Jiuhua",
    "Putuo", "Hengshan", "Songshan", "Kunyu", "Ailao", "Gaoligong", "Daxing", "Liupan", "Helan",
    "Qilian", "Altai", "Tarim", "Junggar", "Hexi", "Longxi", "Jianghan", "Chaoshan", "Minnan",
)  # fmt: skip
DISTRIBUTOR_KINDS = ("Auto Export", "Vehicle Trading", "Auto International", "Motors Export", "Auto Supply Chain")
DISTRIBUTOR_DIVISIONS = ("440300", "310115", "120116", "370200", "330200", "440100", "320500", "210200", "350200")

# Destination countries: weight (the 2025 leaders first) and real cities for outlets.
COUNTRIES: dict[str, tuple[int, tuple[str, ...]]] = {
    "MX": (10, ("Mexico City", "Monterrey", "Guadalajara", "Puebla", "Querétaro", "Tijuana")),
    "RU": (10, ("Moscow", "Saint Petersburg", "Kazan", "Yekaterinburg", "Novosibirsk", "Krasnodar")),
    "AE": (8, ("Dubai", "Abu Dhabi", "Sharjah")),
    "GB": (7, ("London", "Birmingham", "Manchester", "Leeds", "Bristol", "Glasgow")),
    "BR": (7, ("São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba", "Brasília", "Salvador")),
    "SA": (6, ("Riyadh", "Jeddah", "Dammam", "Mecca")),
    "AU": (5, ("Sydney", "Melbourne", "Brisbane", "Perth")),
    "BE": (4, ("Antwerp", "Brussels", "Ghent")),
    "TH": (4, ("Bangkok", "Chiang Mai", "Pattaya")),
    "KZ": (4, ("Almaty", "Astana", "Shymkent")),
    "UZ": (3, ("Tashkent", "Samarkand")),
    "TR": (3, ("Istanbul", "Ankara", "Izmir")),
    "IL": (3, ("Tel Aviv", "Haifa", "Jerusalem")),
    "PH": (3, ("Manila", "Cebu City", "Davao City")),
    "ID": (3, ("Jakarta", "Surabaya", "Bandung")),
    "MY": (3, ("Kuala Lumpur", "Johor Bahru", "Penang")),
    "CL": (3, ("Santiago", "Valparaíso", "Concepción")),
    "ES": (3, ("Madrid", "Barcelona", "Valencia")),
    "DE": (2, ("Berlin", "Munich", "Hamburg")),
    "FR": (2, ("Paris", "Lyon", "Marseille")),
    "IT": (2, ("Milan", "Rome", "Turin")),
    "NL": (2, ("Amsterdam", "Rotterdam")),
    "EG": (2, ("Cairo", "Alexandria")),
    "NZ": (2, ("Auckland", "Wellington", "Christchurch")),
    "PE": (2, ("Lima", "Arequipa")),
    "CO": (2, ("Bogotá", "Medellín")),
}
OUTLET_LABELS = ("Service Centre", "Auto Care", "After-Sales Station", "Authorised Workshop")
COUNTRIES_PER_TIER = {"A": (10, 16), "B": (5, 9), "C": (2, 5), None: (1, 4)}
MODELS_PER_TIER = {"A": (20, 30), "B": (12, 20), "C": (6, 12)}
AUTHORISED_PER_TIER = {"A": (4, 10), "B": (2, 5), "C": (1, 3)}
CONFIRMATIONS = 320

FX_AS_OF = "2026-10-30"
CNY_PER_UNIT = {
    "USD": "7.12", "EUR": "8.26", "GBP": "9.41", "AED": "1.94", "SAR": "1.90",
    "RUB": "0.088", "MXN": "0.385", "BRL": "1.31", "AUD": "4.66", "HKD": "0.916",
}  # fmt: skip
# The 2026 holiday schedule of the State Council (closures, and the weekend days worked instead), as the
# General Office of the State Council announced it on 4 November 2025 (Xinhua; checked day by day).
PUBLIC_HOLIDAYS = (
    ("2026-01-01", 3), ("2026-02-15", 9), ("2026-04-04", 3), ("2026-05-01", 5),
    ("2026-06-19", 3), ("2026-09-25", 3), ("2026-10-01", 7),
)  # fmt: skip
WORKING_WEEKEND_DAYS = ("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10")

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
VIN_VALUES = dict(zip("ABCDEFGHJKLMNPRSTUVWXYZ", (*range(1, 9), 1, 2, 3, 4, 5, 7, 9, *range(2, 10)), strict=True))
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def uscc(rng: random.Random, division: str) -> str:
    """A well-formed unified social credit code (GB 32100): enterprise, division, org code, check."""
    body = "91" + division + organisation_code(rng)
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(body, USCC_WEIGHTS, strict=True))
    return body + USCC_CHARS[(31 - total % 31) % 31]


def organisation_code(rng: random.Random) -> str:
    """Eight digits and their GB 11714 check character."""
    digits = "".join(rng.choice("0123456789") for _ in range(8))
    check = 11 - sum(int(d) * w for d, w in zip(digits, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return digits + {10: "X", 11: "0"}.get(check, str(check))


def vin(wmi: str, descriptor: str, year_code: str, plant: str, serial: int) -> str:
    """A VIN with its ISO 3779 check digit in position 9."""
    partial = f"{wmi}{descriptor}0{year_code}{plant}{serial:06d}"
    total = sum((int(c) if c.isdigit() else VIN_VALUES[c]) * w for c, w in zip(partial, VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return partial[:8] + check + partial[9:]


QILIN_CONFIRMED_VIN = vin(QILIN_WMI, "A7C1B", "T", "S", 42)


def weighted_sample(rng: random.Random, weights: dict[str, int], k: int) -> list[str]:
    """``k`` distinct keys, each draw proportional to weight."""
    pool = dict(weights)
    chosen = []
    for _ in range(min(k, len(pool))):
        key = rng.choices(list(pool), weights=list(pool.values()))[0]
        chosen.append(key)
        del pool[key]
    return chosen


def listing(rng: random.Random) -> Row:
    first = rng.choices(("listed", "suspended", "cancelled"), weights=(90, 6, 4))[0]
    if rng.random() < 0.08:  # not (yet) on next year's list
        return {"2026": first}
    return {"2026": first, "2027": rng.choices(("listed", "suspended"), weights=(95, 5))[0]}


def new_manufacturers(rng: random.Random, taken: set[str]) -> list[Row]:
    rows = []
    for stem, _, tier, division in NEW_MANUFACTURERS:
        rows.append(
            {
                "code": fresh_code(rng, division, taken),
                "name": f"{stem} {rng.choice(MANUFACTURER_KINDS)} Co., Ltd.",
                "role": "manufacturer",
                "years": listing(rng),
                "tier": tier,
            }
        )
    return rows


def new_distributors(rng: random.Random, taken: set[str]) -> list[Row]:
    return [
        {
            "code": fresh_code(rng, rng.choice(DISTRIBUTOR_DIVISIONS), taken),
            "name": f"{place} {rng.choice(DISTRIBUTOR_KINDS)} Co., Ltd.",
            "role": "distributor",
            "years": listing(rng) if rng.random() > 0.05 else {"2027": "listed"},  # newly listed for 2027
        }
        for place in DISTRIBUTOR_PLACES
    ]


def fresh_code(rng: random.Random, division: str, taken: set[str]) -> str:
    while (code := uscc(rng, division)) in taken:
        pass
    taken.add(code)
    return code


def brands_of(rng: random.Random, stem: str, tier: str) -> list[str]:
    extra = {"A": 2, "B": 1, "C": 0}[tier]
    return [stem, *(f"{stem} {s}" for s in rng.sample(SUB_BRANDS, rng.randint(0, extra)))]


def models_for(rng: random.Random, maker: Row, index: int, brands: dict[str, str], start: int) -> list[Row]:
    """A manufacturer's new models: numbered on from ``start``, CCC numbered on from 100."""
    low, high = MODELS_PER_TIER[maker["tier"]]
    return [
        model_row(rng, maker["code"], rng.choice(list(brands)), brands, index, start + i, 100 + i)
        for i in range(rng.randint(low, high))
    ]


def model_row(
    rng: random.Random, maker: str, brand: str, prefixes: dict[str, str], index: int, n: int, seq: int
) -> Row:
    issued = ccc_issue_date(rng)
    price = rng.lognormvariate(11.8, 0.42)  # median about 133,000 CNY: the 2025 export average was about 147,000
    return {
        "model_code": f"{prefixes[brand]}7{n:03d}BEV",
        "manufacturer": maker,
        "brand": brand,
        "ccc_certificate": f"{issued.year}011101{index:02d}{seq:04d}",
        "ccc_valid_until": (issued.replace(year=issued.year + 5) - timedelta(days=1)).isoformat(),
        "reference_price_cny": None if rng.random() < 0.03 else max(45_000, min(600_000, round(price, -3))),
    }


def ccc_issue_date(rng: random.Random) -> date:
    """CCC certificates run five years; the older ones have lapsed by now."""
    year = rng.choices((2020, 2021, 2022, 2023, 2024, 2025, 2026), weights=(4, 8, 14, 20, 24, 20, 10))[0]
    last = date(2026, 10, 31) if year == 2026 else date(year, 12, 31)
    first = date(year, 1, 2)
    return first + timedelta(days=rng.randint(0, (last - first).days))


def base_prefixes(models: Sequence[Row]) -> dict[str, dict[str, str]]:
    """Per 2026.1 manufacturer: each brand's model-code prefix, as its existing models spell it."""
    prefixes: dict[str, dict[str, str]] = {}
    for m in models:
        prefixes.setdefault(m["manufacturer"], {})[m["brand"]] = m["model_code"][:2]
    return prefixes


def all_models(rng: random.Random, base: Row, makers: Sequence[Row], new_brands: dict[str, list[str]]) -> list[Row]:
    models = list(base["models"])
    models.append(unpriced_qilin_model())
    prefixes = base_prefixes(base["models"])
    for stem, prefix, _, _ in NEW_MANUFACTURERS:
        code = next(m["code"] for m in makers if m["name"].startswith(stem + " "))
        prefixes[code] = dict.fromkeys(new_brands[code], prefix)
    for index, maker in enumerate(makers):
        numbers = [int(m["model_code"][3:6]) for m in models if m["manufacturer"] == maker["code"]]
        models += models_for(rng, maker, index, prefixes[maker["code"]], max(numbers, default=0) + 1)
    return models


def unpriced_qilin_model() -> Row:
    return {
        "model_code": QILIN_UNPRICED_MODEL,
        "manufacturer": QILIN_MOTOR,
        "brand": "Qilin",
        "ccc_certificate": "2026011101000003",
        "ccc_valid_until": "2031-03-31",
        "reference_price_cny": None,
    }


def authorisations(
    rng: random.Random, base: Row, brands: dict[str, list[str]], makers: Sequence[Row], distributors: Sequence[Row]
) -> list[Row]:
    rows = list(base["authorisations"])
    rows += [{**a, "year": 2027} for a in base["authorisations"] if a["status"] == "active"]  # renewed for 2027
    old = {e["code"] for e in base["enterprises"]}
    for year in YEARS:
        eligible = [d["code"] for d in distributors if d["years"].get(str(year)) == "listed"]
        for maker in makers:
            # between two 2026.1 enterprises, 2026.1 says who is authorised: the samples rely on it
            others = [d for d in eligible if maker["code"] not in old or d not in old]
            rows += authorisations_for(rng, maker, year, others, brands[maker["code"]], rows)
    return rows


def brands_by_maker(models: Sequence[Row]) -> dict[str, list[str]]:
    brands: dict[str, list[str]] = {}
    for model in models:
        known = brands.setdefault(model["manufacturer"], [])
        if model["brand"] not in known:
            known.append(model["brand"])
    return brands


def authorisations_for(
    rng: random.Random, maker: Row, year: int, eligible: list[str], brands: list[str], existing: Sequence[Row]
) -> list[Row]:
    """Active authorisations up to the tier's cap (counting those made already), now and then a withdrawn one."""
    mine = [a for a in existing if a["manufacturer"] == maker["code"] and a["year"] == year]
    low, high = AUTHORISED_PER_TIER[maker["tier"]]
    wanted = max(0, min(rng.randint(low, high), TIER_CAPS[maker["tier"]]) - sum(a["status"] == "active" for a in mine))
    statuses = ["active"] * wanted + (["withdrawn"] if rng.random() < 0.3 else [])
    candidates = [d for d in eligible if d not in {a["distributor"] for a in mine}]
    chosen = rng.sample(candidates, min(len(statuses), len(candidates)))
    return [authorisation(rng, d, maker["code"], brands, year, s) for d, s in zip(chosen, statuses, strict=False)]


def authorisation(rng: random.Random, distributor: str, maker: str, brands: list[str], year: int, status: str) -> Row:
    covered = sorted(rng.sample(brands, rng.randint(1, len(brands))))
    return {"distributor": distributor, "manufacturer": maker, "brands": covered, "year": year, "status": status}


def outlets(rng: random.Random, enterprises: Sequence[Row], base_codes: set[str]) -> Iterator[Row]:
    weights = {country: weight for country, (weight, _) in COUNTRIES.items()}
    for e in enterprises:
        low, high = COUNTRIES_PER_TIER[e.get("tier")]
        countries = weighted_sample(rng, weights, rng.randint(low, high))
        if e["code"] in base_codes and "MX" not in countries:  # the samples ship 2026.1 enterprises' cars to Mexico
            countries.append("MX")
        if e["code"] == QILIN_MOTOR:
            countries = [c for c in countries if c != QILIN_UNCOVERED_COUNTRY]
        for country in countries:
            yield from outlets_in(rng, e, country)


def outlets_in(rng: random.Random, enterprise: Row, country: str) -> Iterator[Row]:
    weight, cities = COUNTRIES[country]
    most = len(cities) if weight >= 6 and enterprise["role"] == "manufacturer" else min(3, len(cities))
    short = enterprise["name"].split(" ")[0]
    for city in rng.sample(cities, rng.randint(1, most)):
        name = f"{short} {rng.choice(OUTLET_LABELS)} {city}"
        yield {"enterprise": enterprise["code"], "country": country, "city": city, "name": name}


def confirmations(rng: random.Random, makers: Sequence[Row], network: Sequence[Row]) -> list[Row]:
    """Manufacturers' after-sales confirmations for recently registered vehicles exported as used,
    each for a country where the manufacturer has outlets (it confirms only service it can give)."""
    wmis = {
        m["code"]: QILIN_WMI if m["code"] == QILIN_MOTOR else f"L{'ABCDEFGH'[i // 10]}{i % 10}"
        for i, m in enumerate(makers)
    }
    rows = [confirmation(1, QILIN_MOTOR, QILIN_CONFIRMED_VIN, "MX", date(2026, 9, 14))]
    served: dict[str, dict[str, int]] = {}
    for outlet in network:
        served.setdefault(outlet["enterprise"], {})[outlet["country"]] = COUNTRIES[outlet["country"]][0]
    seen = {QILIN_CONFIRMED_VIN}
    while len(rows) < CONFIRMATIONS:
        maker = rng.choices(makers, weights=[{"A": 6, "B": 3, "C": 1}[m["tier"]] for m in makers])[0]
        descriptor = "".join(rng.choice(VIN_CHARS) for _ in range(5))
        number = vin(wmis[maker["code"]], descriptor, rng.choice("ST"), rng.choice("ABCDEFGH"), rng.randint(1, 999_999))
        if number in seen:
            continue
        seen.add(number)
        day = date(2026, 1, 5) + timedelta(days=rng.randint(0, 319))
        country = weighted_sample(rng, served[maker["code"]], 1)[0]
        rows.append(confirmation(len(rows) + 1, maker["code"], number, country, day))
    return rows


def confirmation(seq: int, maker: str, number: str, country: str, day: date) -> Row:
    return {
        "number": f"ASC-{day.year}-{seq:06d}",
        "manufacturer": maker,
        "vin": number,
        "destination_country": country,
        "confirmed_on": day.isoformat(),
    }


def holidays() -> list[str]:
    return [
        (date.fromisoformat(start) + timedelta(days=i)).isoformat() for start, n in PUBLIC_HOLIDAYS for i in range(n)
    ]


def build() -> Row:
    rng = random.Random(SEED)
    base: Row = json.loads((HERE / f"{BASE_VERSION}.json").read_text(encoding="utf-8"))
    base_codes = {e["code"] for e in base["enterprises"]}
    taken = set(base_codes)
    old = [{**e, "tier": BASE_TIERS[e["code"]]} if e["role"] == "manufacturer" else e for e in base["enterprises"]]
    created = new_manufacturers(rng, taken)
    new_brands = {m["code"]: brands_of(rng, m["name"].split(" ")[0], m["tier"]) for m in created}
    enterprises = [e for e in old if e["role"] == "manufacturer"] + created
    enterprises += [e for e in old if e["role"] == "distributor"] + new_distributors(rng, taken)
    makers = [e for e in enterprises if e["role"] == "manufacturer"]
    distributors = [e for e in enterprises if e["role"] == "distributor"]
    models = all_models(rng, base, makers, new_brands)
    network = list(outlets(rng, enterprises, base_codes))
    return {
        "version": VERSION,
        "licensed_commodity_codes": base["licensed_commodity_codes"],
        "distributor_caps": TIER_CAPS,
        "enterprises": enterprises,
        "authorisations": authorisations(rng, base, brands_by_maker(models), makers, distributors),
        "models": models,
        "ports": base["ports"],
        "after_sales_outlets": network,
        "after_sales_confirmations": confirmations(rng, makers, network),
        "fx_as_of": FX_AS_OF,
        "cny_per_unit": CNY_PER_UNIT,
        "public_holidays": holidays(),
        "working_weekend_days": list(WORKING_WEEKEND_DAYS),
    }


def render(data: Row) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    (HERE / f"{VERSION}.json").write_text(render(build()), encoding="utf-8")
