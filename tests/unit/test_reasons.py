"""The reasons a rep reads: every feature of every feature set in one topic with a clean
sentence, and the rules that pick reasons from contributions."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from features.declarations import FeatureSet, FeatureSpec
from features.reasons import TOPICS, Value, topics_for
from features.sets import CATEGORY_LEVELS, DEAL_V1, FEATURE_SETS, LEAD_V1
from serving.explain import Explainer, not_known, unseen_features

SETS = list(FEATURE_SETS.values())
PLURALS = ("days", "months", "years", "times", "activities", "contacts", "employees", "deals",
           "contracts", "users", "logins", "tickets", "emails", "links", "replies", "visits",
           "downloads", "forms", "webinars", "calls", "meetings", "demos", "renewals")
PLURAL_SLIP = re.compile(rf"(?<![\d,.])1 (?:[a-z-]+ ){{0,2}}(?:{'|'.join(PLURALS)})\b")
"""A "1" followed by a plural noun: "1 meetings", "1 days", "1 weekly active users"."""


def _clean(text: str) -> None:
    assert text and text == text.strip(), text
    assert "{" not in text and "}" not in text, text
    assert "_" not in text, f"internal name in {text!r}"
    for word in ("nan", "None", "True", "False", "not known"):
        assert not re.search(rf"\b{word}\b", text), text
    assert not PLURAL_SLIP.search(text), f"plural slip in {text!r}"


def _level(name: str) -> str:
    return CATEGORY_LEVELS[name][0]


def _values(fs: FeatureSet, n: float, flag: bool | None) -> dict[str, Value]:
    """Every feature of ``fs`` at ``n`` (counts), ``flag`` (yes/no); categories at a level,
    shares and rates kept within 0..1."""
    out: dict[str, Value] = {}
    for spec in fs.features:
        if spec.dtype == "category":
            out[spec.name] = _level(spec.name)
        elif spec.dtype == "bool":
            out[spec.name] = flag
        elif spec.name.endswith(("_share_90d", "_win_rate")):
            out[spec.name] = min(n, 1.0)
        elif spec.dtype == "int":
            out[spec.name] = int(n)
        else:
            out[spec.name] = float(n)
    return out


@pytest.mark.parametrize("fs", SETS, ids=lambda f: f.name)
def test_every_feature_has_exactly_one_declared_topic(fs: FeatureSet) -> None:
    """A feature added to a set without a topic fails here (it would read through the
    fallback, its internal name and a bare template)."""
    declared = TOPICS[fs.name]
    owned = [f for t in declared for f in t.features]
    assert sorted(owned) == sorted(fs.names), set(owned) ^ set(fs.names)
    assert topics_for(fs) == declared
    assert len({t.name for t in declared}) == len(declared)
    for t in declared:
        assert set(t.needs) | set(t.absence) | set(t.reads) <= set(fs.names), t.name
        assert "_" not in t.label, t.label


@pytest.mark.parametrize("fs", SETS, ids=lambda f: f.name)
@pytest.mark.parametrize(("case", "n", "flag"), [("one", 1, True), ("many", 3, True),
                                                  ("many-large", 1234.4, True),
                                                  ("zero", 0, False)])
def test_every_topic_reads_cleanly_for_one_many_and_zero(
    fs: FeatureSet, case: str, n: float, flag: bool
) -> None:
    values = _values(fs, n, flag)
    for topic in topics_for(fs):
        assert topic.known(values), topic.name
        _clean(topic.phrase(values))


@pytest.mark.parametrize("fs", SETS, ids=lambda f: f.name)
def test_unknown_values_are_never_a_sentence(fs: FeatureSet) -> None:
    """With every value missing a topic is either not known (it names no value and is
    left to the warnings) or states an absence in words."""
    values: dict[str, Value] = dict.fromkeys(fs.names)
    for topic in topics_for(fs):
        if topic.known(values):
            assert topic.absent(values), topic.name
            _clean(topic.phrase(values))


def test_the_unknown_seniority_level_is_not_known() -> None:
    (seniority,) = [t for t in topics_for(LEAD_V1) if t.name == "seniority"]
    assert not seniority.known({"seniority": "unknown"})
    assert seniority.phrase({"seniority": "c_level"}) == "seniority: C-level"


def _phrase(fs: FeatureSet, topic: str, **values: Any) -> str:
    (t,) = [t for t in topics_for(fs) if t.name == topic]
    return t.phrase(values)


def test_windows_give_the_telling_counts() -> None:
    def demos(c7: int, c30: int, c90: int) -> str:
        return _phrase(LEAD_V1, "demo", demo_7d=c7, demo_30d=c30, demo_90d=c90)

    assert demos(0, 0, 0) == "no demo in the last 90 days"
    assert demos(1, 1, 1) == "1 demo in the last 7 days"
    assert demos(0, 2, 2) == "2 demos in the last 30 days (none in the last 7)"
    assert demos(0, 0, 3) == "3 demos in the last 90 days (none in the last 30)"
    assert demos(1, 1, 3) == "3 demos in the last 90 days (1 in the last 7)"
    assert demos(1, 2, 3) == "3 demos in the last 90 days (2 in the last 30, 1 in the last 7)"


def test_deal_sentences() -> None:
    assert _phrase(DEAL_V1, "close_date", days_to_close=-4.2, close_date_pushes=1,
                   close_date_push_days=14.0) == (
        "4 days past its expected close date; the close date was pushed once, by 14 days")
    assert _phrase(DEAL_V1, "close_date", days_to_close=1.0, close_date_pushes=0,
                   close_date_push_days=0.0) == (
        "expected to close in 1 day; the close date was never pushed")
    assert _phrase(DEAL_V1, "owner", owner_closed_deals=1, owner_win_rate=0.0) == (
        "the deal's owner has closed 1 deal, and lost it")
    assert _phrase(DEAL_V1, "owner", owner_closed_deals=0, owner_win_rate=None) == (
        "the deal's owner has not closed a deal yet")
    assert _phrase(DEAL_V1, "time_in_stage", days_in_stage=12.4, stage="meeting_demo") == (
        "12 days in meeting/demo")
    assert _phrase(DEAL_V1, "activity", activities_30d=1, days_since_last_activity=0.2,
                   activity_trend_7d=-1) == (
        "1 activity on this deal in the last 30 days, the latest today; 1 fewer in the last "
        "7 days than in the 7 before")
    assert _phrase(DEAL_V1, "amount", amount=40_000.0, amount_change_pct=-0.2) == (
        "deal amount $40,000, cut by 20% since the deal opened")


# -- choosing reasons -----------------------------------------------------------------------


def _set(*specs: FeatureSpec) -> FeatureSet:
    return FeatureSet("lead_v1", 1, "lead_qualification", "lead_id", specs)


def _count(name: str, monotone: int = 0) -> FeatureSpec:
    return FeatureSpec(name, "lead", "int", "", monotone=monotone)  # type: ignore[arg-type]


def _explain(fs: FeatureSet, contrib: list[float], values: dict[str, Value],
             **kw: Any) -> tuple[list[str], list[str], list[str]]:
    ex = Explainer(fs)
    sums = ex.sums(np.array(contrib, dtype=float))[0]
    e = ex.explain(sums, values, **kw)
    return [f.topic for f in e.up], [f.topic for f in e.down], e.unknown


def test_windows_of_one_activity_are_one_reason_with_their_contributions_summed() -> None:
    ex = Explainer(LEAD_V1)
    contrib = np.zeros(len(LEAD_V1.names))
    for name, c in (("demo_7d", 0.25), ("demo_30d", 0.5), ("demo_90d", -0.125)):
        contrib[LEAD_V1.names.index(name)] = c
    values = {n: 0 for n in LEAD_V1.names} | {"demo_7d": 1, "demo_30d": 2, "demo_90d": 2}
    e = ex.explain(ex.sums(contrib)[0], values)
    assert [(f.topic, f.contribution, f.text) for f in e.up] == [
        ("demo", 0.625, "2 demos in the last 30 days (1 in the last 7)")]
    assert e.up[0].actionable and e.up[0].values == {"demo_7d": 1, "demo_30d": 2,
                                                     "demo_90d": 2}
    assert e.down == []


def test_unknown_values_are_never_reasons_and_are_listed_once() -> None:
    up, down, unknown = _explain(
        LEAD_V1, [1.0 if n in ("industry", "employees", "lead_age_days") else 0.0
                  for n in LEAD_V1.names],
        dict.fromkeys(LEAD_V1.names) | {"lead_age_days": 3.0})
    assert up == ["lead_age_days"] and down == []
    assert "industry" in unknown and "company size" in unknown
    assert not_known(["industry", "industry", "timeline"]) == "not known: industry, timeline"
    assert not_known([]) is None


def test_an_absence_raises_the_score_only_when_constrained_to() -> None:
    values = {n: 0 for n in DEAL_V1.names} | {"stage": "proposal", "amount": 5000.0}
    contrib = [{"call_30d": 0.9, "stage_moves_back": 0.5, "amount": 0.1}.get(n, 0.0)
               for n in DEAL_V1.names]
    up, down, _ = _explain(DEAL_V1, contrib, values)
    # "no call" is no reason for; "never moved back a stage" is (constrained monotone
    # decreasing); then the amount.
    assert up == ["stage_moves_back", "amount"] and down == []
    contrib[DEAL_V1.names.index("call_30d")] = -0.9
    up, down, _ = _explain(DEAL_V1, contrib, values)
    assert down == ["call"]


def test_flagged_features_never_raise_the_score() -> None:
    values = {n: 1 for n in DEAL_V1.names} | {"stage": "proposal", "product": "starter",
                                               "industry": "software", "country": "US",
                                               "source": "referral"}
    contrib = [1.0 if n == "days_in_stage" else 0.1 for n in DEAL_V1.names]
    up, _, _ = _explain(DEAL_V1, contrib, values)
    assert up[0] == "time_in_stage"
    up, _, _ = _explain(DEAL_V1, contrib, values, exclude_up={"days_in_stage"})
    assert "time_in_stage" not in up and len(up) == 3


def test_up_to_three_each_way_strongest_first() -> None:
    fs = _set(*(_count(f"f{i}") for i in range(8)))
    values: dict[str, Value] = {f"f{i}": 2 for i in range(8)}
    up, down, _ = _explain(fs, [0.5, -0.1, 0.0, 2.0, -3.0, 0.1, 0.7, -0.2], values)
    assert up == ["f3", "f6", "f0"] and down == ["f4", "f7", "f1"]


def test_left_out_context_is_not_known_and_not_listed_twice() -> None:
    values = {n: 0 for n in DEAL_V1.names} | {"stage": "proposal"}
    contrib = [1.0 if n.startswith("account_") else 0.0 for n in DEAL_V1.names]
    up, down, unknown = _explain(DEAL_V1, contrib, values, absent={"account", "account_deals"})
    assert not {"account_engagement", "account_history"} & set(up + down)
    assert "activity across the account" not in unknown


def test_unseen_category_values_are_found() -> None:
    raw = {"source": "linkedin_ads", "seniority": "chief", "industry": "software"}
    assert unseen_features(LEAD_V1, raw) == {"source": "linkedin_ads", "seniority": "chief"}


def _toy_columns(fs: FeatureSet, seed: int, n_leads: int, holes: float) -> tuple[
    list[str], dict[str, np.ndarray]
]:
    """A toy CRM's entities of ``fs`` and their scored feature columns, with a share
    ``holes`` of every feature's values blanked out (NaN, or category code -1)."""
    import pandas as pd

    from features.build import select_features
    from serving.scoring import entity_features
    from tests.data.toy_crm import toy_crm

    tables = toy_crm(seed, n_leads=n_leads)
    key = fs.entity_key
    frame = tables.leads if key == "lead_id" else tables.opportunities
    ids = frame[key].astype(str).tolist()
    as_of = pd.Timestamp(frame["created_at"].max()) + pd.Timedelta(days=3)
    columns = select_features(entity_features(tables, key, ids, as_of.to_pydatetime()), fs)
    rng = np.random.default_rng(seed)
    for name in fs.names:  # blank out some values of every kind
        category = fs.spec(name).dtype == "category"
        col = columns[name].copy() if category else columns[name].astype(np.float64)
        col[rng.random(len(col)) < holes] = -1 if category else np.nan
        columns[name] = col
    return ids, columns


@pytest.mark.parametrize("fs", [LEAD_V1, DEAL_V1], ids=lambda f: f.name)
def test_known_rows_is_each_topics_known_row_by_row(
    fs: FeatureSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole batch's known topics, read from the scored columns, are what each topic
    says of each row's values (missing, NaN, unknown levels, real values)."""

    from serving.explain import row_values
    from serving.scoring import Scored

    ids, columns = _toy_columns(fs, seed=5, n_leads=40, holes=0.2)
    scored = Scored(ids=ids, feature_set=fs, columns=columns,
                    probabilities=np.zeros(len(ids)), contributions=None)
    ex = Explainer(fs)
    one = {name: col[:1] for name, col in columns.items()}
    assert ex.known_rows(one) is None  # a few rows: each topic asks each row
    monkeypatch.setattr("serving.explain.KNOWN_ROWS_MIN", 1)
    rows = [row_values(fs, row) for row in scored.values()]
    expected = np.array([[t.known(v) for t in ex.topics] for v in rows])
    got = ex.known_rows(columns)
    assert got is not None and expected.shape == got.shape and not expected.all() and expected.any()
    np.testing.assert_array_equal(got, expected)


class _Recording(Mapping[str, Value]):
    """A row of plausible values that records every name read."""

    def __init__(self, fs: FeatureSet) -> None:
        self.read: set[str] = set()
        self._values: dict[str, Value] = {}
        for spec in fs.features:
            levels = spec.levels or CATEGORY_LEVELS.get(spec.name, ())
            self._values[spec.name] = (
                levels[0] if spec.dtype == "category" and levels
                else True if spec.dtype == "bool" else 2)

    def __getitem__(self, name: str) -> Value:
        self.read.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@pytest.mark.parametrize("fs", list(FEATURE_SETS.values()), ids=lambda fs: fs.name)
def test_every_sentence_reads_only_its_features_and_reads(fs: FeatureSet) -> None:
    # Serving hands a chosen topic's phrase those values alone (serving.explain._Cells).
    for topic in topics_for(fs):
        row = _Recording(fs)
        assert topic.phrase(row)
        assert row.read <= {*topic.features, *topic.reads}, topic.name


@pytest.mark.parametrize("fs", [LEAD_V1, DEAL_V1], ids=lambda f: f.name)
def test_a_batch_explains_each_row_as_that_row_alone(fs: FeatureSet) -> None:
    """explain_rows on a whole batch (ranked and chosen on arrays, values read from the
    scored columns) gives each row what explaining it on its own gives: the same reasons
    in the same order, the same words and values, the same unknown topics, with rows that
    leave out context, rows with flagged features and rows with unseen values mixed in."""

    from serving.explain import row_values
    from serving.scoring import Scored

    ids, columns = _toy_columns(fs, seed=6, n_leads=60, holes=0.15)
    rng = np.random.default_rng(1)
    n = len(ids)
    contributions = rng.normal(size=(n, len(fs.names)))
    contributions[rng.random(contributions.shape) < 0.3] = 0.0
    scored = Scored(ids=ids, feature_set=fs, columns=columns,
                    probabilities=np.zeros(n), contributions=contributions)
    ex = Explainer(fs)
    sums = ex.sums(contributions)
    parts = sorted(ex.context_labels)
    absent = [set(rng.choice(parts, size=rng.integers(0, 3), replace=False)) if parts
              and rng.random() < 0.3 else set() for _ in range(n)]
    names = list(fs.names)
    exclude = [set(rng.choice(names, size=3, replace=False)) if rng.random() < 0.3 else set()
               for _ in range(n)]
    said = [{names[int(rng.integers(len(names)))]} if rng.random() < 0.2 else set()
            for _ in range(n)]
    batch = ex.explain_rows(sums, scored.feature_values(), ex.known_rows(columns), absent,
                            exclude, said)
    rows = [row_values(fs, row) for row in scored.values()]
    alone = [ex.explain(sums[i], rows[i], absent=absent[i], exclude_up=exclude[i],
                        said=said[i]) for i in range(n)]
    assert batch == alone
    assert any(e.up for e in batch) and any(e.down for e in batch)
    assert any(e.unknown for e in batch)
