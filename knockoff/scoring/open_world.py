"""Open-world verdicts: what the photo shows, whether a reference supports judging it, and the flag.

A crawl is mostly products nobody monitors, and the gallery never covers every view of the
products it does. So each photo gets a `status` before any score is believed:

- `no_match`: the photo shows no catalogued product. Either an unmonitored (background)
  reference is closer than every catalogued one, or the nearest catalogued reference is
  farther than `no_match.threshold`, set on held-back photos of unmonitored products so that
  at most `false_match_rate` of them would pass it (ignoring the background references, so the
  bound holds for unmonitored products unlike any the gallery has).
- `no_match` also when the photo is no closer to P than photos of P's *other* products of its
  group (another sneaker model, another package of the brand) are, but for
  `category_false_match_rate` of them: held-back photos of the group's other products set
  that bound (`impostor`), since a product nobody monitors most resembles its monitored
  neighbours, not fruit. The one product of its kind the catalogue holds has no such photos,
  yet unmonitored neighbours all the same: it borrows the bound by rank, as deep into P's own
  held-back photos' similarities as the neighbours of the other groups reach into their
  products' photos, but for the same rate (`impostor_depth`). A bound set on fewer than
  `category_min_products` neighbour products is made no looser than that borrowed one (1 by
  default: only a product alone borrows; 5 was measured, README).
- `unsupported`: a catalogued product P with known fakes, but no reference close enough to
  judge it: its nearest reference of P is farther than P's own held-back photos are but for
  `support_alpha` of them (a conformal lower bound), or it is within that bound but below the
  no-match threshold (a view of P the gallery lacks). Also when either side is far: the
  nearer of its nearest genuine reference and its nearest known fake is lower than that of
  P's held-back photos but for `support_alpha` of them (`style`). When P's genuine references
  and fakes come from different kinds of photos, a new kind of photo finds its nearest
  references all on one side, by style alone: both sides must be as close as on the photos
  that calibrated P. The row says so in figures. (A genuine-only product has no such bounds:
  its score is that very distance.)
- `scored`: judged against P alone. With known fakes of P: the soft k-NN log-odds over P's
  genuine references and P's fakes, Platt-calibrated on P's held-back photos. Genuine
  references only (cold start): how far the photo lies from P's genuine references, in units
  of how far P's genuine references lie from each other, calibrated on held-back genuine
  photos to `cold_start_false_flag_rate`.
- `copy`: the photo is a copy of a genuine reference (gallery/copies.py): a reused photo says
  nothing about the goods, so it is neither flagged nor cleared. (A copy of a known fake is
  `scored` and flagged, naming the fake.)
- `error`: the photo could not be read.

Calibrations fall back from the product to its group (brand, or dataset) to all products
when the product has too few held-back photos, and every row says which level it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from knockoff.scoring.calibration import Calibration, fit_calibration
from knockoff.wording import apart

SCORED, NO_MATCH, UNSUPPORTED, COPY, ERROR = "scored", "no_match", "unsupported", "copy", "error"
STATUSES = (SCORED, NO_MATCH, UNSUPPORTED, COPY, ERROR)
LEVELS = ("product", "group", "global")
BORROWED = "borrowed"  # an impostor bound set by rank from other groups' neighbours (impostor_depth)


@dataclass(frozen=True)
class OpenWorldParams:
    false_match_rate: float = 0.01  # unmonitored photos allowed past the no-match threshold
    support_alpha: float = 0.02  # share of a product's own photos allowed below its support bound
    cold_start_false_flag_rate: float = 0.01  # genuine photos flagged by a genuine-only product
    min_photos: int = 30  # held-back photos for a product-level bound or cold-start calibration
    min_per_class: int = 15  # held-back fakes and genuine photos for a product-level Platt fit
    category_false_match_rate: float = 0.02  # photos of a group's other products allowed past a product's impostor bound
    category_min_products: int = 1  # neighbour products a group's own impostor bound must rest on to stand alone


@dataclass(frozen=True)
class Bound:
    value: float
    level: str  # product | group | global: whose held-back photos set it
    photos: int


@dataclass(frozen=True)
class ColdStart:
    """Genuine references only: distance = (mean - s) / spread of P's genuine reference similarity."""

    mean: float  # P's genuine references: mean similarity to their nearest other genuine reference
    spread: float
    threshold: float  # distance above which a photo is flagged
    level: str
    photos: int


@dataclass(frozen=True)
class ProductPolicy:
    group: str
    support: Bound
    calibration: Calibration | None = None  # P has known fakes
    calibration_level: str = ""
    cold_start: ColdStart | None = None  # P has genuine references only
    style: Bound | None = None  # P has known fakes: the nearer side must be at least this close
    impostor: Bound | None = None  # photos of the group's other products (level 'category') reach this close to P,
    # or, where they are too few products, the stricter of that and how deep the neighbours of
    # well-covered groups reach into their own products' photos (level 'borrowed')


@dataclass
class OpenWorld:
    """Everything the open-world verdict needs, fit by `knockoff index`, kept in gallery.json."""

    params: OpenWorldParams
    no_match: Bound
    products: dict[str, ProductPolicy] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> OpenWorld:
        products = {}
        for name, policy in values["products"].items():
            products[name] = ProductPolicy(
                group=policy["group"], support=Bound(**policy["support"]),
                calibration=Calibration(**policy["calibration"]) if policy.get("calibration") else None,
                calibration_level=policy.get("calibration_level", ""),
                cold_start=ColdStart(**policy["cold_start"]) if policy.get("cold_start") else None,
                style=Bound(**policy["style"]) if policy.get("style") else None,
                impostor=Bound(**policy["impostor"]) if policy.get("impostor") else None,
            )
        return cls(OpenWorldParams(**values["params"]), Bound(**values["no_match"]), products)


@dataclass
class Verdicts:
    status: list[str]
    score: np.ndarray  # p(counterfeit) for scored rows; NaN otherwise
    flagged: np.ndarray  # only scored rows can be True
    threshold: np.ndarray
    reason: list[str | None]  # why a row is not scored, in figures
    level: list[str | None]  # which calibration judged it


def conformal_lower_bound(similarities: np.ndarray, alpha: float) -> float:
    """A bound below which at most `alpha` of new photos like these fall (split conformal):
    the floor(alpha (n + 1))-th smallest, or the smallest when n is too small for alpha."""
    ordered = np.sort(np.asarray(similarities, dtype=np.float64))
    rank = int(np.floor(alpha * (len(ordered) + 1)))
    return float(ordered[max(rank, 1) - 1])


def no_match_bound(unmonitored_similarity: np.ndarray, false_match_rate: float) -> Bound:
    """The nearest-catalogue similarity that at most `false_match_rate` of held-back unmonitored
    photos reach (upper conformal bound: the ceil((1 - rate)(n + 1))-th smallest)."""
    ordered = np.sort(np.asarray(unmonitored_similarity, dtype=np.float64))
    if not len(ordered):
        raise ValueError("the no-match threshold needs held-back photos of unmonitored products")
    rank = int(np.ceil((1 - false_match_rate) * (len(ordered) + 1)))
    value = float(ordered[min(rank, len(ordered)) - 1]) if rank <= len(ordered) else float(np.nextafter(ordered[-1], np.inf))
    return Bound(value, "global", len(ordered))


def cold_start_distance(nearest_genuine: np.ndarray, cold_start: ColdStart) -> np.ndarray:
    return (cold_start.mean - np.asarray(nearest_genuine, dtype=np.float64)) / cold_start.spread


def cold_start_probability(distance: np.ndarray, cold_start: ColdStart) -> np.ndarray:
    """A score in [0, 1] that crosses 0.5 at the flag threshold: logistic in the distance, one
    reference spread beyond the threshold moving the odds by a factor e."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(distance) - cold_start.threshold)))


def decide(world: OpenWorld, product: list[str | None], nearest_catalogue: np.ndarray, nearest_background: np.ndarray,
           product_similarity: np.ndarray, raw: np.ndarray, nearest_genuine: np.ndarray,
           nearest_fake: np.ndarray | None = None) -> Verdicts:
    """Status, score and flag per photo, from what matching found (all arrays per photo:
    `product` the product judged against, `product_similarity` its nearest reference of it,
    `raw` the log-odds over its references, `nearest_genuine` and `nearest_fake` its nearest
    genuine reference and known fake of it)."""
    nearest_fake = np.full(len(product), np.nan) if nearest_fake is None else nearest_fake
    n = len(product)
    verdicts = Verdicts([SCORED] * n, np.full(n, np.nan), np.zeros(n, dtype=bool), np.full(n, np.nan), [None] * n, [None] * n)
    for i in range(n):
        policy = world.products.get(product[i] or "")
        catalogue, background = float(nearest_catalogue[i]), float(nearest_background[i])
        if policy is None or background >= catalogue:
            verdicts.status[i] = NO_MATCH
            shown = apart(background, catalogue)
            verdicts.reason[i] = (f"nearest unmonitored reference {shown[0]} >= nearest catalogued {shown[1]}: "
                                  f"it looks more like a product nobody monitors"
                                  if policy is not None else f"product {product[i]!r} is not in the catalogue")
            continue
        similarity = float(product_similarity[i])
        if catalogue < world.no_match.value:
            # Below the catalogue's threshold, yet as close to P as P's own held-back photos
            # are: a view of P the gallery lacks, more likely than an unmonitored product.
            # Work for an analyst (needs references), never a verdict.
            if policy.support.value > -1.0 and similarity >= policy.support.value:
                verdicts.status[i] = UNSUPPORTED
                shown = apart(catalogue, policy.support.value, world.no_match.value)
                verdicts.reason[i] = (f"nearest reference of {product[i]} {shown[0]}: like its held-back photos "
                                      f"(>= {shown[1]}), but below the {shown[2]} that judged photos must reach "
                                      f"({world.params.false_match_rate:.1%} of unmonitored photos do): a view of it "
                                      f"the gallery lacks")
            else:
                verdicts.status[i] = NO_MATCH
                shown = apart(catalogue, world.no_match.value)
                verdicts.reason[i] = (f"nearest catalogued reference {shown[0]}; catalogued products start at "
                                      f"{shown[1]} ({world.params.false_match_rate:.1%} of unmonitored photos reach it)")
            continue
        if policy.impostor is not None and similarity < policy.impostor.value:
            verdicts.status[i] = NO_MATCH
            verdicts.reason[i] = _impostor_reason(product[i], policy, similarity, world.params)
            continue
        if not similarity >= policy.support.value:
            verdicts.status[i] = UNSUPPORTED
            shown = apart(similarity, policy.support.value)
            verdicts.reason[i] = (f"nearest reference of {product[i]} {shown[0]}; its {policy.support.level}'s "
                                  f"held-back photos are >= {shown[1]}: no reference close enough to judge it")
            continue
        nearer_side = min(float(nearest_genuine[i]), float(nearest_fake[i]))
        if policy.style is not None and np.isfinite(nearer_side) and nearer_side < policy.style.value:
            verdicts.status[i] = UNSUPPORTED
            shown = apart(float(nearest_genuine[i]), float(nearest_fake[i]), policy.style.value)
            verdicts.reason[i] = (f"nearest genuine reference {shown[0]}, nearest known fake "
                                  f"{shown[1]}: on its {policy.style.level}'s held-back photos both sides are "
                                  f">= {shown[2]}; a kind of photo one side's references do not cover")
            continue
        if policy.calibration is not None:
            verdicts.score[i] = float(policy.calibration.probability(np.array([raw[i]]), np.array([similarity]))[0])
            verdicts.threshold[i] = policy.calibration.threshold
            verdicts.level[i] = policy.calibration_level
        elif policy.cold_start is not None:
            distance = cold_start_distance(np.array([nearest_genuine[i]]), policy.cold_start)
            verdicts.score[i] = float(cold_start_probability(distance, policy.cold_start)[0])
            verdicts.threshold[i] = 0.5
            verdicts.level[i] = f"cold start ({policy.cold_start.level})"
        verdicts.flagged[i] = bool(verdicts.score[i] >= verdicts.threshold[i])
    return verdicts


def _impostor_reason(product: str, policy: ProductPolicy, similarity: float, params: OpenWorldParams) -> str:
    shown = apart(similarity, policy.impostor.value)
    rate = params.category_false_match_rate
    if policy.impostor.level == BORROWED:
        return (f"nearest reference of {product} {shown[0]}, below {shown[1]}: too few other {policy.group} products "
                f"are catalogued to set its bound (it takes {params.category_min_products}), so it is borrowed from other "
                f"kinds (as deep into its held-back photos as {rate:.0%} of their neighbours reach into theirs): "
                f"it may show another product of the kind")
    return (f"nearest reference of {product} {shown[0]}: photos of other {policy.group} products "
            f"reach {shown[1]} ({rate:.0%} of them), so it may show another product of the kind")


@dataclass
class HeldBack:
    """What matching found for held-back labelled photos, each judged against its own product."""

    product: list[str]
    group: list[str]
    is_fake: np.ndarray
    product_similarity: np.ndarray
    raw: np.ndarray
    nearest_genuine: np.ndarray
    nearest_catalogue: np.ndarray  # what the no-match gate reads (decide)
    nearest_background: np.ndarray
    nearest_fake: np.ndarray | None = None
    # product -> how close held-back photos of the group's *other* products come to its references
    impostors: dict[str, np.ndarray] = field(default_factory=dict)

    def passes_no_match(self, no_match: Bound) -> np.ndarray:
        """Which photos `decide` would not rule `no_match` (the catalogued ones it can judge)."""
        return (self.nearest_background < self.nearest_catalogue) & (self.nearest_catalogue >= no_match.value)


def fit_open_world(held_back: HeldBack, unmonitored_catalogue_similarity: np.ndarray, products: dict[str, dict],
                   params: OpenWorldParams, target_precision: float) -> OpenWorld:
    """Per product: support bound, and Platt calibration (known fakes) or cold start (genuine only).

    `products` describes each catalogued product: {'group', 'fakes' (bool), 'genuine_mean',
    'genuine_spread'} from its references.
    """
    world = OpenWorld(params, no_match_bound(unmonitored_catalogue_similarity, params.false_match_rate))
    names = np.array(held_back.product, dtype=object)
    groups = np.array(held_back.group, dtype=object)
    members = group_members(held_back)
    depth = impostor_depth(held_back, params.category_false_match_rate, params.category_min_products)
    for name, description in sorted(products.items()):
        mine, group = names == name, groups == description["group"]
        pools = [("product", mine), ("group", group), ("global", np.ones(len(names), dtype=bool))]
        neighbours = len(members.get(description["group"], set()) - {name})
        impostor = _impostor_bound(held_back, name, neighbours, pools, params, depth)
        if description["fakes"]:
            support = _support(held_back, pools, params.min_photos, params.support_alpha)
            calibration, level = _calibration(held_back, pools, params, target_precision, name)
            style = _style(held_back, pools, params.min_photos, params.support_alpha)
            world.products[name] = ProductPolicy(description["group"], support, calibration, level, style=style,
                                                 impostor=impostor)
        else:
            # Genuine references only: the distance from them *is* the evidence (a fake lies
            # farther than genuine photos do), so a support bound on the same distance would
            # abstain on exactly the photos to flag. Such a product abstains through no_match only.
            support = Bound(-1.0, "none (cold start)", 0)
            cold = _cold_start(held_back, pools, params, description, products, held_back.passes_no_match(world.no_match))
            world.products[name] = ProductPolicy(description["group"], support, cold_start=cold, impostor=impostor)
    return world


def _style(held_back: HeldBack, pools, min_photos: int, alpha: float) -> Bound | None:
    """The lower bound on the nearer side (nearest genuine or nearest fake) of P's held-back photos."""
    if held_back.nearest_fake is None:
        return None
    nearer = np.fmin(held_back.nearest_genuine, held_back.nearest_fake)
    level, members = _narrowest(pools, min_photos)
    return Bound(conformal_lower_bound(nearer[members], alpha), level, int(members.sum()))


def _impostor_bound(held_back: HeldBack, name: str, neighbours: int, pools, params: OpenWorldParams,
                    depth: Bound | None) -> Bound | None:
    """P's own group's bound where enough neighbour products (`neighbours`: the group's other
    products with held-back photos) set it; else the stricter of it and the borrowed one."""
    own = _impostor(held_back.impostors.get(name), params.category_false_match_rate)
    if own is not None and neighbours >= params.category_min_products:
        return own
    found = [b for b in (own, _borrowed_impostor(held_back, pools, params.min_photos, depth)) if b is not None]
    return max(found, key=lambda bound: bound.value) if found else None


def group_members(held_back: HeldBack) -> dict[str, set[str]]:
    """Per group, the products with held-back photos (what a product's own impostor bound rests on)."""
    members: dict[str, set[str]] = {}
    for product, group in zip(held_back.product, held_back.group):
        members.setdefault(group, set()).add(product)
    return members


def _impostor(similarities: np.ndarray | None, rate: float) -> Bound | None:
    """The similarity to P that at most `rate` of the group's other products' photos reach."""
    if similarities is None or len(similarities) == 0:
        return None
    bound = no_match_bound(similarities, rate)
    return Bound(bound.value, "category", bound.photos)


def impostor_depth(held_back: HeldBack, rate: float, min_products: int) -> Bound | None:
    """How deep the group's other products reach into a product's own held-back photos, pooled
    over every product of a well-covered group (at least `min_products` neighbour products with
    held-back photos) that has photos of its own: each neighbour photo's rank among the
    product's own photos' similarities (the share of them it is closer than, out of n + 1), and
    the rank at most `rate` of the neighbour photos reach (conformal). None without such products."""
    names = np.array(held_back.product, dtype=object)
    members, group_of = group_members(held_back), dict(zip(held_back.product, held_back.group))
    ranks = []
    for name, similarities in sorted(held_back.impostors.items()):
        own = np.sort(held_back.product_similarity[names == name])
        if len(own) and len(similarities) and len(members[group_of[name]] - {name}) >= min_products:
            ranks.append(np.searchsorted(own, similarities, side="left") / (len(own) + 1))
    if not ranks:
        return None
    bound = no_match_bound(np.concatenate(ranks), rate)
    return Bound(min(bound.value, 1.0), BORROWED, bound.photos)


def _borrowed_impostor(held_back: HeldBack, pools, min_photos: int, depth: Bound | None) -> Bound | None:
    """A product too few neighbours of its group bound: its own held-back photos' similarity at
    the depth the well-covered groups' neighbours reach (the product's photos, else its group's,
    else all)."""
    if depth is None:
        return None
    values = held_back.product_similarity[_narrowest(pools, min_photos)[1]]
    return Bound(float(np.quantile(values, depth.value)), BORROWED, depth.photos) if len(values) else None


def _support(held_back: HeldBack, pools, min_photos: int, alpha: float) -> Bound:
    level, members = _narrowest(pools, min_photos)
    return Bound(conformal_lower_bound(held_back.product_similarity[members], alpha), level, int(members.sum()))


def _narrowest(pools, min_photos: int) -> tuple[str, np.ndarray]:
    """The narrowest pool (product, group, global) with at least `min_photos` held-back photos; global regardless."""
    for level, members in pools:
        if members.sum() >= min_photos or level == "global":
            return level, members
    raise AssertionError("unreachable")


def _calibration(held_back: HeldBack, pools, params: OpenWorldParams, target_precision: float, name: str):
    """Platt calibration at the narrowest pool with enough of both classes whose threshold
    certifies the target precision. A pool that certifies none (with one false flag more than
    it shows, reaching 0.95 takes 19 fakes above every genuine photo: Air Force 1's 18 held-back
    fakes never can) yields to the wider one, since a product calibrated to flag nothing would
    flag nothing on its own score. The widest pool is kept, certified or not."""
    for level, members in pools:
        fakes, genuine = (held_back.is_fake & members).sum(), (~held_back.is_fake & members).sum()
        if min(fakes, genuine) >= params.min_per_class or level == "global":
            if min(fakes, genuine) == 0:
                return None, ""
            source = f"{name} ({level}: {int(members.sum())} held-back photos)"
            calibration = fit_calibration(held_back.raw[members], held_back.is_fake[members], target_precision, source,
                                          closeness=held_back.product_similarity[members])
            if calibration.recall > 0 or level == "global":
                return calibration, level
    raise AssertionError("unreachable")


def _cold_start(held_back: HeldBack, pools, params: OpenWorldParams, description: dict, products: dict[str, dict],
                scored: np.ndarray) -> ColdStart:
    """The distance threshold that at most the target share of held-back genuine photos exceed
    *and* are scored (past the no-match gate). The rate counts every genuine photo, scored or
    not, but only scored ones can be flagged: the far tail of genuine photos is already ruled
    `no_match`, so the threshold sits among the photos that reach a verdict rather than below
    the gate, where it would flag nothing (the leave-one-product-out benchmark measured 0% of
    Air Force 1 fakes flagged before). Distances are per product (each photo against its own
    product's references and spread), so photos of a group's products can be pooled."""
    genuine = ~held_back.is_fake
    names = np.array(held_back.product, dtype=object)
    for level, members in pools:
        chosen = members & genuine & np.array(["genuine_mean" in products.get(p, {}) for p in names])
        if chosen.sum() >= params.min_photos or level == "global":
            distances = np.array([(products[p]["genuine_mean"] - s) / products[p]["genuine_spread"]
                                  for p, s in zip(names[chosen], held_back.nearest_genuine[chosen])])
            judged = np.where(scored[chosen], distances, -np.inf)
            threshold = _upper_bound(judged, params.cold_start_false_flag_rate)
            return ColdStart(description["genuine_mean"], description["genuine_spread"], threshold, level, int(chosen.sum()))
    raise AssertionError("unreachable")


def _upper_bound(values: np.ndarray, rate: float) -> float:
    """The value at or above which at most `rate` of these lie (conformal); photos never judged
    are -inf. With fewer judged photos than that rank, beyond the farthest judged one."""
    if not len(values):
        return float("inf")
    bound = -conformal_lower_bound(-values, rate)
    finite = values[np.isfinite(values)]
    if not np.isfinite(bound):
        return float(np.nextafter(finite.max(), np.inf)) if len(finite) else float("inf")
    return float(bound)
