"""The values the generated CRM's fields take, and what each does to hidden intent or quality.

Effects are in log-rate units: +0.5 on a lead's intent makes it about 1.6 times as likely
to turn hot on any given day.
"""

from __future__ import annotations

import numpy as np

from features.schema import ACTIVITY_TYPES

SOURCES = (
    "inbound_web_form", "webinar", "referral", "paid_search", "cold_outbound", "event",
    "partner",
)
SOURCE_WEIGHTS = np.array([0.22, 0.12, 0.07, 0.18, 0.25, 0.08, 0.08])
SOURCE_EFFECT = np.array([0.55, 0.25, 1.0, -0.15, -0.9, 0.05, 0.45])

SENIORITIES = ("c_level", "vp", "director", "manager", "individual", "unknown")
SENIORITY_WEIGHTS = np.array([0.06, 0.10, 0.18, 0.26, 0.28, 0.12])
SENIORITY_EFFECT = np.array([0.45, 0.4, 0.3, 0.05, -0.35, 0.0])
SENIORITY_TITLE = ("Chief {f} Officer", "VP of {f}", "Director of {f}", "{f} Manager",
                   "{f} Specialist", "{f}")

FUNCTIONS = ("sales", "marketing", "it", "finance", "operations", "engineering", "hr",
             "other")
FUNCTION_WEIGHTS = np.array([0.2, 0.18, 0.16, 0.1, 0.12, 0.12, 0.06, 0.06])
FUNCTION_EFFECT = np.array([0.35, 0.2, 0.3, 0.0, 0.1, 0.15, -0.35, -0.4])
FUNCTION_LABEL = ("Sales", "Marketing", "IT", "Finance", "Operations", "Engineering",
                  "People", "Office")

INDUSTRIES = ("software", "financial_services", "healthcare", "manufacturing", "retail",
              "education", "logistics", "media", "government", "energy")
INDUSTRY_WEIGHTS = np.array([0.2, 0.13, 0.11, 0.13, 0.1, 0.07, 0.08, 0.07, 0.05, 0.06])
INDUSTRY_EFFECT = np.array([0.5, 0.35, 0.1, 0.1, -0.1, -0.3, 0.0, -0.15, -0.45, 0.05])

COUNTRIES = ("US", "GB", "DE", "FR", "CA", "AU", "NL", "IN", "BR", "ES")
COUNTRY_WEIGHTS = np.array([0.42, 0.12, 0.1, 0.07, 0.07, 0.05, 0.05, 0.05, 0.04, 0.03])
COUNTRY_EFFECT = np.array([0.15, 0.1, 0.05, 0.0, 0.1, 0.05, 0.05, -0.3, -0.25, -0.1])

PRODUCTS = ("starter", "professional", "enterprise", "renewal", "expansion")
PRODUCT_BASE_AMOUNT = np.array([9_000.0, 28_000.0, 85_000.0, 0.0, 0.0])
PRODUCT_EFFECT = np.array([0.25, 0.0, -0.35, 1.0, 0.5])
RENEWAL, EXPANSION = PRODUCTS.index("renewal"), PRODUCTS.index("expansion")

# Activity types in ACTIVITY_TYPES order, and the share of each that is inbound.
N_TYPES = len(ACTIVITY_TYPES)
INBOUND_SHARE = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.1, 0.0])


def activity_rates(**kw: float) -> np.ndarray:
    """A per-day rate for each activity type, zero for the types not named."""
    out = np.zeros(N_TYPES)
    for name, value in kw.items():
        out[ACTIVITY_TYPES.index(name)] = value
    return out
