"""The declared feature sets: names, dtypes, descriptions a rep can read, directions."""

from __future__ import annotations

import pytest

from features.declarations import FeatureSet
from features.sets import (
    ACCOUNT_EXPANSION_V1,
    ACCOUNT_RENEWAL_V1,
    CATEGORY_LEVELS,
    DEAL_V1,
    FEATURE_SETS,
    LEAD_V1,
)
from features.tasks import task_spec
from leadscore import generator

SAMPLE = {"float": 12.5, "int": 3, "bool": True, "category": "referral"}


def test_registry_and_tasks() -> None:
    assert FEATURE_SETS == {"lead_v1": LEAD_V1, "deal_v1": DEAL_V1,
                            "account_renewal_v1": ACCOUNT_RENEWAL_V1,
                            "account_expansion_v1": ACCOUNT_EXPANSION_V1}
    assert (LEAD_V1.task, LEAD_V1.entity_key) == ("lead_qualification", "lead_id")
    assert (DEAL_V1.task, DEAL_V1.entity_key) == ("deal_close", "opportunity_id")
    assert task_spec("deal_close").feature_set is DEAL_V1
    with pytest.raises(ValueError, match="unknown task 'churn'; expected one of"):
        task_spec("churn")


@pytest.mark.parametrize("fs", list(FEATURE_SETS.values()), ids=lambda f: f.name)
def test_names_unique_and_descriptions_format(fs: FeatureSet) -> None:
    assert len(fs.names) == len(set(fs.names))
    assert not {"as_of", "label", fs.entity_key} & set(fs.names)
    for spec in fs.features:
        text = spec.description.format(value=SAMPLE[spec.dtype])
        assert "{" not in text and text.strip(), spec.name
        if spec.dtype == "category":
            assert spec.name in CATEGORY_LEVELS, spec.name
        assert spec.monotone in (-1, 0, 1)
        assert spec.monotone == 0 or spec.dtype in ("int", "float"), spec.name


def test_deal_set_has_the_stage_category_training_splits_on() -> None:
    assert DEAL_V1.spec("stage").dtype == "category"
    assert "stage" in DEAL_V1.categorical


def test_known_directions_are_declared() -> None:
    for fs in (LEAD_V1, DEAL_V1):
        assert fs.spec("pricing_page_visit_7d").monotone == 1
        assert fs.spec("contacts_engaged").monotone == 1
        assert fs.spec("days_since_last_activity").monotone == -1
    assert DEAL_V1.spec("close_date_pushes").monotone == -1
    assert DEAL_V1.spec("close_date_push_days").monotone == -1
    assert LEAD_V1.spec("source").monotone == 0


def test_windows_are_declared_for_windowed_counts() -> None:
    assert LEAD_V1.spec("demo_90d").window_days == 90
    assert LEAD_V1.spec("email_replied_7d").window_days == 7


def test_levels_cover_the_generator_vocabulary() -> None:
    gen = generator
    pairs = {
        "source": gen.SOURCES,
        "seniority": gen.SENIORITIES,
        "job_function": gen.FUNCTIONS,
        "industry": gen.INDUSTRIES,
        "country": gen.COUNTRIES,
        "product": gen.PRODUCTS,
    }
    for name, values in pairs.items():
        assert set(values) <= set(CATEGORY_LEVELS[name]), name
