import pytest

from knockoff.data.records import FAKE, GENUINE, ImageRecord, parse_authenticity


@pytest.mark.parametrize(
    "value, expected",
    [("original", GENUINE), ("Genuine", GENUINE), (" authentic ", GENUINE), ("fake", FAKE),
     ("COUNTERFEIT", FAKE), ("replica", FAKE), (1, FAKE), (0, GENUINE), ("1", FAKE), (True, FAKE),
     (False, GENUINE), (None, None), ("", None), (float("nan"), None), ("unknown", None)],
)
def test_parse_authenticity(value, expected):
    assert parse_authenticity(value) == expected


@pytest.mark.parametrize("value", ["maybe", 2, "fakee"])
def test_parse_authenticity_rejects_unknown_labels(value):
    with pytest.raises(ValueError, match="authenticity label"):
        parse_authenticity(value)


def test_class_name_combines_product_and_authenticity():
    assert ImageRecord("a.jpg", product="nike jordan 1", authenticity=FAKE).class_name == "nike jordan 1 | fake"
    with pytest.raises(ValueError, match="needs product and authenticity"):
        ImageRecord("a.jpg", product="nike jordan 1").class_name
