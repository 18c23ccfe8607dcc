import math

import pytest

from knockoff.data.catalogue import Catalogue, CatalogueProduct, read_catalogue, read_rates

HEADER = "product,brand,retail_price,currency,official_photos,authorised_sellers\n"


def write(path, text):
    path.write_text(text)
    return path


def test_a_catalogue_resolves_official_photos_beside_it_and_keeps_urls(tmp_path):
    catalogue = read_catalogue(write(tmp_path / "c.csv", HEADER +
                                     "Nike Air Force,nike,110,usd,photos/af1.jpg; https://brand.example/af1-side.jpg,dealer-1;dealer-2\n"
                                     "nike jordan 1,nike,180.00,USD,,\n"))
    air_force = catalogue.find("  NIKE air   force ")  # case and spacing ignored
    assert air_force.official_photos == (str((tmp_path / "photos/af1.jpg").resolve()), "https://brand.example/af1-side.jpg")
    assert air_force.currency == "USD" and air_force.authorised_sellers == ("dealer-1", "dealer-2")
    assert catalogue.find("nike jordan 1").official_photos == () and catalogue.find("nike dunk") is None
    assert catalogue.authorised("nike air force", "dealer-2") is True
    assert catalogue.authorised("nike air force", "shady") is False
    assert catalogue.authorised("nike jordan 1", "anyone") is None  # the brand lists nobody
    assert Catalogue.from_dict(catalogue.to_dict()) == catalogue


@pytest.mark.parametrize("row, says", [
    ("nike air force,nike,cheap,USD,,", "line 2: retail_price 'cheap' is not a number"),
    ("nike air force,nike,-5,USD,,", "line 2: retail_price must be a positive number"),
    (",nike,110,USD,,", "line 2: product is empty"),
    ("nike air force,nike,110,USD,,\nNike Air Force,nike,120,USD,,", "listed twice"),
])
def test_a_bad_row_rejects_the_catalogue_naming_its_line(tmp_path, row, says):
    with pytest.raises(ValueError, match=says):
        read_catalogue(write(tmp_path / "c.csv", HEADER + row + "\n"))


def test_a_catalogue_without_its_required_columns_says_which(tmp_path):
    with pytest.raises(ValueError, match="missing columns retail_price, currency"):
        read_catalogue(write(tmp_path / "c.csv", "product,brand\nx,y\n"))
    with pytest.raises(FileNotFoundError):
        read_catalogue(tmp_path / "none.csv")


def test_prices_are_compared_in_the_catalogue_currency_with_the_users_rates(tmp_path):
    rates = write(tmp_path / "rates.csv", "currency,rate\nUSD,1.0\neur,1.1\n")
    catalogue = read_catalogue(write(tmp_path / "c.csv", HEADER + "shoe,acme,100,USD,,\n"), rates)
    assert catalogue.rates == {"USD": 1.0, "EUR": 1.1}
    assert math.isclose(catalogue.price_ratio("shoe", 50.0, "EUR"), 0.55)
    assert math.isclose(catalogue.price_ratio("shoe", 40.0, None), 0.40)  # no currency: the catalogue's own
    assert catalogue.price_ratio("shoe", 40.0, "GBP") is None  # no rate: no price signal, never a guess
    assert catalogue.price_ratio("shoe", None, "USD") is None and catalogue.price_ratio("shoe", 0.0, "USD") is None
    assert catalogue.price_ratio("kiwi", 4.0, "USD") is None  # not catalogued
    without_rates = Catalogue((CatalogueProduct("shoe", "acme", 100.0, "USD"),))
    assert without_rates.price_ratio("shoe", 50.0, "EUR") is None


def test_rates_must_cover_the_catalogue_and_be_positive(tmp_path):
    with pytest.raises(ValueError, match="no rate for the catalogue's USD"):
        read_catalogue(write(tmp_path / "c.csv", HEADER + "shoe,acme,100,USD,,\n"), write(tmp_path / "r.csv", "currency,rate\nEUR,1\n"))
    with pytest.raises(ValueError, match="line 2: needs a currency and a positive rate"):
        read_rates(write(tmp_path / "bad.csv", "currency,rate\nEUR,0\n"))


def test_a_title_names_the_product_whose_own_words_it_holds():
    catalogue = Catalogue((CatalogueProduct("nike air force", "nike", 110.0, "USD"), CatalogueProduct("nike jordan 1", "nike", 180.0, "USD"),
                           CatalogueProduct("nike jordan 1 low", "nike", 120.0, "USD")))
    assert catalogue.named_in("Air Force 1 '07 Triple White, size 42").product == "nike air force"
    assert catalogue.named_in("AIR JORDAN 1 Retro High OG Chicago").product == "nike jordan 1"
    assert catalogue.named_in("Jordan 1 Low SE").product == "nike jordan 1 low"  # the most specific
    assert catalogue.named_in("Jordan 11 Concord") is None and catalogue.named_in("Nike Dunk Low") is None
    assert catalogue.named_in(None) is None
