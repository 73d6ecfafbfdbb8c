"""Write-back's pure parts: reasons in one text field, record ids checked."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.mapping.spec import ExportTarget
from serving.write_back import WriteBackError, reasons_text, write_back_frame


def _reasons(*texts: str) -> list[dict[str, str]]:
    return [{"text": t} for t in texts]


def test_reasons_alternate_for_and_against_and_stay_whole() -> None:
    text, cut = reasons_text(_reasons("demo held", "VP", "web visits"), _reasons("silent"), 200)
    assert text == "+ demo held; - silent; + VP; + web visits" and not cut
    text, cut = reasons_text(_reasons("demo held", "VP"), _reasons("silent"), 22)
    assert text == "+ demo held; - silent" and cut  # the third does not fit: left out whole
    text, cut = reasons_text(_reasons("x" * 40), [], 20)
    assert text == "+ " + "x" * 17 + "…" and len(text) == 20 and cut
    assert reasons_text([], [], 20) == ("", False)


TARGET = ExportTarget(object="Lead", file="Lead_scores.csv", id="Id",
                      id_pattern=r"00Q\w{12}", text_length=30,
                      fields={"score": "Lead_Score__c", "grade": "Lead_Grade__c",
                              "reasons": "Score_Reasons__c", "probability": "P__c"})


def _results(ids: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": ids, "score": [80] * len(ids), "grade": ["A"] * len(ids),
        "probability": [0.123456] * len(ids),
        "reasons_up": [json.dumps(_reasons("demo held", "VP"))] * len(ids),
        "reasons_down": [json.dumps(_reasons("silent for 30 days"))] * len(ids),
    })


def test_the_file_has_the_declared_fields_by_record_id() -> None:
    frame, shortened = write_back_frame(_results(["00Q000000000001"]), "lead_qualification",
                                        TARGET, "salesforce")
    assert list(frame.columns) == ["Id", "Lead_Score__c", "Lead_Grade__c",
                                   "Score_Reasons__c", "P__c"]
    row = frame.iloc[0]
    assert row["Id"] == "00Q000000000001" and row["Lead_Score__c"] == 80
    assert row["Score_Reasons__c"] == "+ demo held"  # "; - silent for 30 days" does not fit
    assert row["P__c"] == pytest.approx(0.1235) and shortened == 1


@pytest.mark.parametrize("ids", [["LEAD00000001"], [None], ["00Q000000000001", "0031"]])
def test_keys_that_are_not_the_crms_ids_are_refused(ids: list[str | None]) -> None:
    with pytest.raises(WriteBackError, match="have no salesforce Lead id"):
        write_back_frame(_results(ids), "lead_qualification", TARGET, "salesforce")
