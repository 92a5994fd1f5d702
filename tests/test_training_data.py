"""Static checks of the Chinese NLU training data (no model training).

* every annotated entity starts and ends on a jieba token boundary, with the shop
  dictionaries in ``bot/dictionaries/`` loaded the way Rasa's JiebaTokenizer loads them;
  otherwise Rasa silently drops the annotation;
* every intent has enough examples (40 per intent, 15 per retrieval sub-intent) and the
  held-out set covers the same intents (15 per intent, 5 per sub-intent);
* no example appears twice, and the held-out set shares no example or near-duplicate with
  the training data;
* no training example is equal to, or a near-copy of, a message of the real shoppers' dev set
  (``../shared/devset/real-dev.tsv`` or ``$NLU_DEVSET``, read only when present; the set is for
  measuring and must never be trained on); a failure names the training example, never the row;
* every retrieval sub-intent (``faq/...``, ``chitchat/...``) has a response and every such
  response belongs to a trained sub-intent.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import unicodedata
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import pytest

pytest.importorskip("rasa")
jieba = pytest.importorskip("jieba")
opencc = pytest.importorskip("opencc")

from rasa.shared.nlu.training_data.loading import load_data  # noqa: E402
from rasa.shared.utils.io import read_yaml_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NLU_DIR = ROOT / "data" / "nlu"
RESPONSES_DIR = ROOT / "data" / "responses"
DICT_DIR = ROOT / "bot" / "dictionaries"
HELDOUT = ROOT / "tests" / "nlu" / "heldout.yml"
REGRESSION = ROOT / "tests" / "nlu" / "regression_sample.yml"

DEVSET = Path(os.environ.get("NLU_DEVSET") or ROOT.parent / "shared" / "devset" / "real-dev.tsv")

TRAIN_FILES = sorted(NLU_DIR.glob("*.yml"))
TEST_FILES = sorted((ROOT / "tests" / "nlu").glob("*.yml"))

RETRIEVAL_INTENTS = ("faq", "chitchat")
EXPECTED_INTENTS = {
    "greet", "goodbye", "thank", "affirm", "deny", "stop", "bot_challenge",
    "out_of_scope", "rate_service",
    "track_order", "track_order_full", "urge_delivery", "cancel_order", "change_address", "inform",
    "return_request", "exchange_request", "refund_status", "price_protection_request",
    "points_balance", "points_expiry", "points_redeem", "membership_tier",
    "human_agent", "complaint", "product_question",
}
EXPECTED_FAQ_KEYS = {
    "shipping_fee", "delivery_time", "invoice", "payment_methods", "price_protection",
    "warranty", "return_policy", "points_rules", "tier_rules", "installation", "coupon_rules",
}
ANNOTATED_ENTITIES = {"return_reason", "product", "date", "quantity"}
# Filled by the deterministic regex extractor; annotating them in training data would teach DIET
# to compete. The held-out file annotates them, so `make eval-nlu` measures the extractor.
REGEX_ENTITIES = {"order_id", "tracking_number", "phone", "phone_last4", "amount"}
RETURN_REASONS = {
    "quality_issue", "wrong_size", "not_as_described", "no_longer_wanted",
    "damaged_on_arrival", "other",
}

MIN_TRAIN_PER_INTENT = 40
MIN_TRAIN_PER_SUBINTENT = 15
MIN_HELDOUT_PER_INTENT = 15
MIN_HELDOUT_PER_SUBINTENT = 5
# Character-bigram Jaccard similarity above which a held-out example counts as a light
# edit of a training example.
NEAR_DUPLICATE_JACCARD = 0.75

_T2S = opencc.OpenCC("t2s")


# --------------------------------------------------------------------------- helpers


def _quiet_load(path: Path):
    logging.getLogger("rasa").setLevel(logging.ERROR)
    return load_data(str(path), language="zh")


def _label(message) -> str:
    """Full intent label: ``faq/invoice`` for retrieval intents, else the intent."""
    return message.get("intent_response_key") or message.get("intent")


def _examples(paths: Iterable[Path]) -> List[Tuple[Path, object]]:
    found = []
    for path in paths:
        for message in _quiet_load(path).nlu_examples:
            found.append((path, message))
    return found


def normalise(text: str) -> str:
    """Text reduced to its words: NFKC, simplified characters, lower case, and only letters
    (Chinese characters and Latin letters) kept, so punctuation, whitespace, digits and emoji
    do not distinguish two examples. Texts with no letters at all (``88``, ``5``, ``👍``) keep
    their symbols instead, so that they stay distinguishable from each other."""
    folded = _T2S.convert(unicodedata.normalize("NFKC", text)).lower()
    letters = "".join(ch for ch in folded if ch.isalpha())
    if letters:
        return letters
    return "".join(ch for ch in folded if not ch.isspace() and unicodedata.category(ch)[0] != "P")


def _bigrams(text: str) -> set:
    return {text[i:i + 2] for i in range(len(text) - 1)} or {text}


def _jaccard(a: str, b: str) -> float:
    x, y = _bigrams(a), _bigrams(b)
    return len(x & y) / len(x | y)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tokenizer():
    """A jieba tokenizer with every file of bot/dictionaries loaded, as JiebaTokenizer does."""
    jieba.setLogLevel(logging.ERROR)
    tok = jieba.Tokenizer()
    files = sorted(p for p in DICT_DIR.glob("*") if p.is_file())
    assert files, f"no jieba dictionary in {DICT_DIR}"
    for path in files:
        tok.load_userdict(str(path))
    tok.initialize()
    return tok


@pytest.fixture(scope="module")
def train_examples():
    return _examples(TRAIN_FILES)


@pytest.fixture(scope="module")
def heldout_examples():
    return _examples([HELDOUT])


@pytest.fixture(scope="module")
def regression_examples():
    return _examples([REGRESSION])


@pytest.fixture(scope="module")
def responses() -> Dict[str, list]:
    merged: Dict[str, list] = {}
    for path in sorted(RESPONSES_DIR.glob("*.yml")):
        merged.update(_quiet_load(path).responses)
    return merged


# --------------------------------------------------------------------------- files


def test_expected_files_exist():
    names = {p.name for p in TRAIN_FILES}
    for name in ("basics.yml", "orders.yml", "returns.yml", "loyalty.yml", "handoff.yml",
                 "faq.yml", "chitchat.yml", "synonyms.yml"):
        assert name in names, f"data/nlu/{name} is missing"
    assert (RESPONSES_DIR / "faq.yml").is_file()
    assert (RESPONSES_DIR / "chitchat.yml").is_file()
    assert HELDOUT.is_file() and REGRESSION.is_file()


@pytest.mark.parametrize(
    "path",
    TRAIN_FILES + sorted(RESPONSES_DIR.glob("*.yml")) + TEST_FILES,
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_files_use_format_3_1(path: Path):
    content = read_yaml_file(str(path))
    assert str(content.get("version")) == "3.1"


def test_dictionary_lines_are_word_freq_tag():
    pattern = re.compile(r"^\S+ \d+ [a-z]+$")
    for path in sorted(p for p in DICT_DIR.glob("*") if p.is_file()):
        seen = set()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert pattern.match(line), f"{path.name}:{number}: {line!r} is not 'word freq tag'"
            word = line.split(" ")[0]
            assert word not in seen, f"{path.name}:{number}: {word} listed twice"
            seen.add(word)


# --------------------------------------------------------------------------- (a) entities


@pytest.mark.parametrize("path", TRAIN_FILES + TEST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_entities_fall_on_jieba_token_boundaries(path: Path, tokenizer):
    misaligned = []
    for message in _quiet_load(path).nlu_examples:
        entities = message.get("entities") or []
        if not entities:
            continue
        text = message.get("text")
        tokens = list(tokenizer.tokenize(text))
        starts = {start for _, start, _ in tokens}
        ends = {end for _, _, end in tokens}
        for entity in entities:
            if entity["start"] not in starts or entity["end"] not in ends:
                split = "/".join(word for word, _, _ in tokens)
                misaligned.append(
                    f"{entity['entity']}={text[entity['start']:entity['end']]!r} in {split}"
                )
    assert not misaligned, "entities not on jieba token boundaries:\n" + "\n".join(misaligned)


@pytest.mark.parametrize("path", TRAIN_FILES + TEST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_entities_stay_on_token_boundaries_after_normalisation(path: Path, tokenizer):
    """The pipeline normalises text (simplified characters, half-width digits, 两件 -> 2件)
    before jieba sees it; annotations must survive that step as well."""
    normalize = _normaliser()
    from bot.nlu.normalize import remap_span
    misaligned = []
    for message in _quiet_load(path).nlu_examples:
        entities = message.get("entities") or []
        if not entities:
            continue
        normalized = normalize(message.get("text"))
        tokens = list(tokenizer.tokenize(normalized.text))
        starts = {start for _, start, _ in tokens}
        ends = {end for _, _, end in tokens}
        for entity in entities:
            start, end = remap_span(normalized, entity["start"], entity["end"])
            if end <= start or start not in starts or end not in ends:
                split = "/".join(word for word, _, _ in tokens)
                misaligned.append(f"{entity['entity']}={normalized.text[start:end]!r} in {split}")
    assert not misaligned, "entities lost after normalisation:\n" + "\n".join(misaligned)


@pytest.mark.parametrize("path", TRAIN_FILES + TEST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_model_entities_are_annotated(path: Path):
    """Training data annotates only what DIET learns; test files may annotate identifiers too."""
    allowed = ANNOTATED_ENTITIES | (REGEX_ENTITIES if path in TEST_FILES else set())
    problems = []
    for message in _quiet_load(path).nlu_examples:
        for entity in message.get("entities") or []:
            name = entity["entity"]
            if name not in allowed:
                problems.append(f"{message.get('text')!r}: entity {name}")
            elif name == "return_reason" and entity.get("value") not in RETURN_REASONS:
                problems.append(f"{message.get('text')!r}: return_reason={entity.get('value')!r}")
    assert not problems, "\n".join(problems)


def test_synonyms_map_to_return_reason_values_without_conflict():
    mapped: Dict[str, str] = {}
    conflicts = []
    for path in TRAIN_FILES:
        data = _quiet_load(path)
        for surface, value in data.entity_synonyms.items():
            if surface in mapped and mapped[surface] != value:
                conflicts.append(f"{surface}: {mapped[surface]} vs {value}")
            mapped[surface] = value
    assert not conflicts, "\n".join(conflicts)
    reasons = {value for value in mapped.values() if value in RETURN_REASONS}
    assert reasons == RETURN_REASONS, "every return_reason value has surface forms"


def _canonical_identifier(kind: str, surface: str) -> str:
    """The value an identifier annotation should carry, from its normalised surface."""
    if kind == "amount":
        return re.sub(r"[^0-9.]", "", surface)
    compact = re.sub(r"[ -]", "", surface).upper()
    if kind == "tracking_number":
        return compact
    return re.sub(r"\D", "", compact)


def _normaliser():
    try:
        from bot.nlu.normalize import normalize
    except ImportError:
        pytest.skip("bot.nlu.normalize is not available")
    return normalize


@pytest.mark.parametrize("path", TRAIN_FILES + TEST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_entity_values_match_the_normalised_text(path: Path):
    """The pipeline rewrites 两件 to 2件 before jieba; an annotation whose value kept the raw
    surface would teach EntitySynonymMapper to turn 2件 back into 两件 (and clash with
    annotations written as 2件). Values other than return_reason are the normalised surface;
    identifiers (held-out file only) carry their canonical value: 「２０２６ １１１５ ００２３」 is
    202611150023, 「sf 8812-3456-7788」 is SF881234567788, 「20块」 is 20."""
    normalize = _normaliser()
    wrong = []
    for message in _quiet_load(path).nlu_examples:
        text = message.get("text")
        for entity in message.get("entities") or []:
            if entity["entity"] == "return_reason":
                continue
            expected = normalize(text[entity["start"]:entity["end"]]).text
            if entity["entity"] in REGEX_ENTITIES:
                expected = _canonical_identifier(entity["entity"], expected)
            if entity.get("value") != expected:
                wrong.append(f"{text!r}: {entity['entity']}={entity.get('value')!r}, want {expected!r}")
    assert not wrong, "\n".join(wrong)


def test_every_entity_type_is_trained(train_examples):
    counts = Counter(
        entity["entity"] for _, m in train_examples for entity in m.get("entities") or []
    )
    for name in ANNOTATED_ENTITIES:
        assert counts[name] >= 10, f"only {counts[name]} annotated {name} entities"


# --------------------------------------------------------------------------- (b) counts


def test_every_intent_has_enough_training_examples(train_examples):
    counts = Counter(_label(m) for _, m in train_examples)
    plain = {label for label in counts if "/" not in label}
    assert EXPECTED_INTENTS <= plain, f"missing intents: {EXPECTED_INTENTS - plain}"
    assert not plain & set(RETRIEVAL_INTENTS), "retrieval intents need a /key"
    faq_keys = {label.split("/", 1)[1] for label in counts if label.startswith("faq/")}
    assert EXPECTED_FAQ_KEYS <= faq_keys, f"missing faq keys: {EXPECTED_FAQ_KEYS - faq_keys}"
    chitchat_keys = {label for label in counts if label.startswith("chitchat/")}
    assert len(chitchat_keys) >= 5
    low = []
    for label, count in sorted(counts.items()):
        minimum = MIN_TRAIN_PER_SUBINTENT if "/" in label else MIN_TRAIN_PER_INTENT
        if count < minimum:
            low.append(f"{label}: {count} < {minimum}")
    assert not low, "\n".join(low)


def test_heldout_covers_every_intent(train_examples, heldout_examples):
    trained = {_label(m) for _, m in train_examples}
    counts = Counter(_label(m) for _, m in heldout_examples)
    assert set(counts) == trained, (
        f"held-out only: {set(counts) - trained}; untested: {trained - set(counts)}"
    )
    low = []
    for label, count in sorted(counts.items()):
        minimum = MIN_HELDOUT_PER_SUBINTENT if "/" in label else MIN_HELDOUT_PER_INTENT
        if count < minimum:
            low.append(f"{label}: {count} < {minimum}")
    assert not low, "\n".join(low)


def test_regression_sample_is_drawn_from_heldout(heldout_examples, regression_examples):
    heldout = {(m.get("text"), _label(m)) for _, m in heldout_examples}
    sample = [(m.get("text"), _label(m)) for _, m in regression_examples]
    assert 50 <= len(sample) <= 80
    assert not [s for s in sample if s not in heldout], "regression examples not in heldout.yml"
    assert {label for _, label in sample} == {label for _, label in heldout}


# --------------------------------------------------------------------------- (c) duplicates


def test_no_example_appears_twice(train_examples, heldout_examples):
    for examples in (train_examples, heldout_examples):
        where = defaultdict(list)
        for path, message in examples:
            where[message.get("text")].append(f"{path.name}:{_label(message)}")
        repeated = {text: places for text, places in where.items() if len(places) > 1}
        assert not repeated, f"repeated examples: {repeated}"


def test_no_normalised_duplicates_within_training(train_examples):
    seen: Dict[str, str] = {}
    clashes = []
    for _, message in train_examples:
        text = message.get("text")
        key = normalise(text)
        if key in seen:
            clashes.append(f"{seen[key]!r} ~ {text!r}")
        else:
            seen[key] = text
    assert not clashes, "near-duplicate training examples:\n" + "\n".join(clashes)


def test_heldout_is_disjoint_from_training(train_examples, heldout_examples):
    train_texts = {m.get("text") for _, m in train_examples}
    train_norm = {normalise(m.get("text")): m.get("text") for _, m in train_examples}
    leaks = []
    for _, message in heldout_examples:
        text = message.get("text")
        if text in train_texts:
            leaks.append(f"{text!r} is a training example")
        elif normalise(text) in train_norm:
            leaks.append(f"{text!r} ~ training {train_norm[normalise(text)]!r}")
    assert not leaks, "\n".join(leaks)


def test_heldout_is_no_light_edit_of_training(train_examples, heldout_examples):
    train_norm = [normalise(m.get("text")) for _, m in train_examples]
    close = []
    for _, message in heldout_examples:
        held = normalise(message.get("text"))
        if len(held) < 4:
            continue
        for train in train_norm:
            if len(train) >= 4 and _jaccard(held, train) >= NEAR_DUPLICATE_JACCARD:
                close.append(f"{message.get('text')!r} ~ {train!r}")
    assert not close, "held-out examples too close to training:\n" + "\n".join(close)


def dev_set_copies(train: Iterable[Tuple[str, str]], dev_texts: Iterable[str]) -> List[str]:
    """Training examples ``(where, text)`` equal to a dev-set message after :func:`normalise`, or a
    near-copy of one (character-bigram Jaccard >= NEAR_DUPLICATE_JACCARD, both at least 4 letters).
    Only the training side is named, so the check never shows a dev-set message."""
    dev = {normalise(text) for text in dev_texts}
    dev_grams = [_bigrams(text) for text in dev if len(text) >= 4]
    found = []
    for where, text in train:
        key = normalise(text)
        if key in dev:
            found.append(f"{where}: {text!r} equals a dev-set message")
        elif len(key) >= 4:
            grams = _bigrams(key)
            best = max((len(grams & other) / len(grams | other) for other in dev_grams), default=0.0)
            if best >= NEAR_DUPLICATE_JACCARD:
                found.append(f"{where}: {text!r} is a near-copy of a dev-set message (bigram Jaccard {best:.2f})")
    return found


def test_dev_set_copy_rule():
    dev = ["请问我的包裹今天能送到吗", "你好"]
    assert dev_set_copies([("a", "請問我的包裹今天能送到嗎？")], dev), "equal after normalising"
    assert dev_set_copies([("a", "请问我的包裹今天能送到吗亲")], dev), "a light edit"
    assert dev_set_copies([("a", "你好！")], dev), "short texts: equality"
    assert not dev_set_copies([("a", "你好呀")], dev), "short texts: no Jaccard"
    assert not dev_set_copies([("a", "包裹到哪了")], dev)


def test_no_training_example_copies_the_dev_set(train_examples):
    """The dev set measures the NLU on real shoppers' messages; a training example equal to or a
    light edit of one of them would make that figure meaningless."""
    if not DEVSET.is_file():
        pytest.skip(f"no dev set at {DEVSET}")
    with DEVSET.open(encoding="utf-8", newline="") as handle:
        dev_texts = [row["text"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
                     if row.get("text")]
    assert dev_texts, f"{DEVSET} has no rows"
    train = [(f"{path.relative_to(ROOT)}:{_label(message)}", message.get("text")) for path, message in train_examples]
    copies = dev_set_copies(train, dev_texts)
    assert not copies, "training examples copied from the dev set:\n" + "\n".join(copies)


def test_normalise_folds_the_usual_variants():
    assert normalise("訂單 202611150023 到哪了？") == normalise("订单到哪了")
    assert normalise("ＯＫ１２３") == "ok"
    assert normalise("88") != normalise("5")


# --------------------------------------------------------------------------- (d) responses


def test_every_retrieval_subintent_has_a_response(train_examples, responses):
    subintents = {_label(m) for _, m in train_examples if "/" in _label(m)}
    missing = sorted(s for s in subintents if f"utter_{s}" not in responses)
    assert not missing, f"no response for: {missing}"
    orphans = sorted(
        name for name in responses
        if name.startswith(tuple(f"utter_{r}/" for r in RETRIEVAL_INTENTS))
        and name[len("utter_"):] not in subintents
    )
    assert not orphans, f"responses without training examples: {orphans}"
    for name, variations in responses.items():
        assert variations and all(v.get("text", "").strip() for v in variations), name


def test_responses_state_the_reference_policy(responses):
    from bot.texts import fill_values

    def text(key: str) -> str:
        return "\n".join(v["text"].format(**fill_values()) for v in responses[key])

    returns = text("utter_faq/return_policy")
    for fact in ("7 天", "15 天", "运费险", "1–3 个工作日", "3–7 个工作日"):
        assert fact in returns, fact
    points = text("utter_faq/points_rules")
    for fact in ("1 积分", "100 积分", "12 月 31 日"):
        assert fact in points, fact
    tiers = text("utter_faq/tier_rules")
    for fact in ("2,000", "10,000", "30,000", "100,000", "12 个月"):
        assert fact in tiers, fact
    # the free-shipping threshold is the same wherever it is mentioned
    assert "满 99 元包邮" in text("utter_faq/shipping_fee")
    assert "满 49 元" in text("utter_faq/shipping_fee") and "满 49 元" in tiers  # crm/policy/tiers.yml
    assert "08:00–23:00" in text("utter_chitchat/ask_abilities")


def test_training_pairs_are_distinct_across_intents(train_examples):
    """The same normalised text under two different intents would be unlearnable."""
    labels = defaultdict(set)
    for _, message in train_examples:
        labels[normalise(message.get("text"))].add(_label(message))
    ambiguous = {text: sorted(ls) for text, ls in labels.items() if len(ls) > 1}
    assert not ambiguous, ambiguous


def test_no_training_example_is_a_near_copy_within_intent(train_examples):
    """Template copies (one word swapped through the same sentence) make poor training data."""
    by_label = defaultdict(list)
    for _, message in train_examples:
        by_label[_label(message)].append(normalise(message.get("text")))
    close = []
    for label, texts in by_label.items():
        for a, b in combinations(texts, 2):
            if min(len(a), len(b)) >= 6 and _jaccard(a, b) >= 0.8:
                close.append(f"{label}: {a} ~ {b}")
    assert not close, "\n".join(close)


# --------------------------------------------------------------------------- (e) regex features


def test_shop_service_terms_lookup_and_absence_regex_agree():
    """The lookup marks messages that use the shop's service words, the regex those that use none
    of them; the two must list the same words."""
    data = _quiet_load(NLU_DIR / "patterns.yml")
    lookup = {table["name"]: set(table["elements"]) for table in data.lookup_tables}["shop_service_terms"]
    regexes = {regex["name"]: regex["pattern"] for regex in data.regex_features}
    absence = re.fullmatch(r"\^\(\?!\.\*\(\?:(.*)\)\)\.\*\$", regexes["no_shop_service_terms"])
    assert absence, regexes["no_shop_service_terms"]
    assert set(absence.group(1).split("|")) == lookup
    pattern = re.compile(regexes["no_shop_service_terms"], re.IGNORECASE)
    assert pattern.search("今天会下雨吗")
    assert not pattern.search("我的快递到哪了")


def test_bare_rating_regex():
    data = _quiet_load(NLU_DIR / "patterns.yml")
    pattern = re.compile({regex["name"]: regex["pattern"] for regex in data.regex_features}["bare_rating"])
    assert all(pattern.search(text) for text in ("4", "5分", "3 星", "1颗星"))
    assert not any(pattern.search(text) for text in ("6", "202611150023", "尾号5678", "4个"))
