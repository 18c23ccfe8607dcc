from knockoff.data.records import FAKE, GENUINE, ImageRecord
from knockoff.listings.marketplace import ARCHETYPES, listing_truth, pools, seller_truth, simulate


def _pools():
    sneakers = [ImageRecord(f"s{i}.jpg", product=f"shoe{i % 2}", authenticity=FAKE if i % 2 else GENUINE) for i in range(40)]
    return pools(sneakers, [ImageRecord(f"g{i}.jpg", product=f"juice{i % 3}", authenticity=GENUINE) for i in range(9)],
                 [ImageRecord(f"u{i}.jpg", product="kiwi") for i in range(9)])


def test_the_marketplace_is_seeded_and_every_seller_is_what_its_archetype_says():
    rows = simulate(_pools(), seed=3)
    assert rows == simulate(_pools(), seed=3) and rows != simulate(_pools(), seed=4)
    sellers, listings = seller_truth(rows), listing_truth(rows)
    assert len(sellers) == sum(a.sellers for a in ARCHETYPES)
    for seller, counterfeit in sellers.items():
        assert counterfeit == seller.startswith(("counterfeit-shop", "replica-shop", "hidden-counterfeit", "mixed-shop")), seller
    for archetype in ("hidden-counterfeit", "mixed-shop", "replica-shop"):
        mine = {r["listing_id"] for r in rows if r["seller_kind"] == archetype}
        assert 0 < sum(listings[listing] for listing in mine) < len(mine)  # fakes hidden among other listings
    for listing in listings:  # one product and one authenticity per listing
        photos = [r for r in rows if r["listing_id"] == listing]
        assert len({(r["true_product"], r["label"]) for r in photos}) == 1 and 1 <= len(photos) <= 3
