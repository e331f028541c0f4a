"""Text in: the tokenizer, the shipped reviews, the embedding bag, a predictor of raw strings and its artifacts."""

import json
import logging
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

import mlkit
from mlkit.__main__ import main
from mlkit.data import Tokenizer, with_tokenizer
from mlkit.data.text import MAX_CHARS, PAD, UNKNOWN, read_texts, words
from mlkit.infer.text import TextPredictor, freeze_text, route, text_metadata, text_problem, with_text
from mlkit.lessons.text import leaning, message_lab, text_lab, unknown_share, word_votes

TRAIN = ["the food was great", "great service, great food", "the soup was cold", "cold and bad"]


@pytest.fixture(scope="module")
def reviews():
    return mlkit.load_dataset("reviews", seed=0)


@pytest.fixture(scope="module")
def bag(reviews):
    model = mlkit.EmbeddingBag(reviews.tokenizer.size, reviews.num_classes, dim=16, seed=0)
    mlkit.fit(model, reviews, mlkit.TrainConfig(epochs=8, learning_rate=3e-3, progress=False))
    return model


@pytest.fixture(scope="module")
def predictor(bag, reviews):
    return freeze_text(bag, reviews)


# ---------------------------------------------------------------- the tokenizer


def test_words_are_lower_case_and_keep_inner_apostrophes():
    assert words("Don't buy it -- WORST purchase!!") == ["don't", "buy", "it", "worst", "purchase"]


def test_the_vocabulary_is_the_commonest_training_words_after_padding_and_unknown():
    tokenizer = Tokenizer.fit(TRAIN, max_words=4, max_len=5)
    # great 3, cold 2, food 2, the 2 (ties alphabetical); was 2 is the fifth and is left out
    assert tokenizer.vocab == (PAD, UNKNOWN, "great", "cold", "food", "the")
    assert tokenizer.size == 6


def test_encode_pads_marks_unknown_words_and_truncates():
    tokenizer = Tokenizer.fit(TRAIN, max_words=4, max_len=5)
    ids = tokenizer.encode(["the food was great", "great great great great great great cold"])
    assert ids.dtype == np.int32 and ids.shape == (2, 5)
    assert ids[0].tolist() == [5, 4, 1, 2, 0]  # "was" is unknown; one slot of padding
    assert ids[1].tolist() == [2, 2, 2, 2, 2]  # only the first max_len words are read
    assert tokenizer.decode(ids[:1]) == ["the food <unk> great"]
    assert tokenizer.tokens("The food WAS great") == ["the", "food", UNKNOWN, "great"]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("one text", "got one str"),
        (b"bytes", "got one bytes"),
        ([b"bytes"], "Decode it first"),
        (["fine", 3], "text 1 is a int, 3, not a string"),
        ([None], "text 0 is missing (None) not a string"),
        ([[0.0] * 40], "text 0 is a list, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0..., not a string"),
        ([""], "has no words"),
        (["   "], "has no words"),
        (["?!..."], "has no words"),
        (["word " * (MAX_CHARS // 4)], f"at most {MAX_CHARS:,} are read"),
        (np.array([["a", "b"]]), "shape (1, 2)"),
        (5, "got int"),
    ],
)
def test_encode_refuses_what_is_not_a_list_of_texts_with_words(bad, says):
    tokenizer = Tokenizer.fit(TRAIN)
    with pytest.raises(ValueError, match=re.escape(says)):
        tokenizer.encode(bad)


def test_encode_takes_numpy_strings_and_an_empty_list():
    tokenizer = Tokenizer.fit(TRAIN)
    assert tokenizer.encode(np.array(["great food"])).shape == (1, tokenizer.max_len)
    assert tokenizer.encode([]).shape == (0, tokenizer.max_len)


def test_tokenizer_round_trips_through_a_dict_and_refuses_a_bad_one():
    tokenizer = Tokenizer.fit(TRAIN, max_len=7)
    assert repr(tokenizer).startswith("Tokenizer(11 ids: <pad>, <unk>, great, cold,")
    assert Tokenizer.from_dict(json.loads(json.dumps(tokenizer.to_dict()))) == tokenizer
    good = tokenizer.to_dict()
    for bad in (
        {**good, "kind": "bytes"},
        {**good, "extra": 1},
        {**good, "vocab": ["great", "food"]},
        {**good, "vocab": [PAD, UNKNOWN, "a", "a"]},
        {**good, "vocab": [PAD, UNKNOWN, 5]},
        {**good, "vocab": "abc"},
        {**good, "max_len": 0},
        {**good, "max_len": True},
        [1, 2],
    ):
        with pytest.raises(ValueError, match=r"Not a (valid )?tokenizer"):
            Tokenizer.from_dict(bad)


# ---------------------------------------------------------------- the shipped text set


def test_reviews_load_as_a_text_set_with_a_vocabulary_fitted_on_train_only(reviews):
    assert reviews.labels == ("negative", "positive") and reviews.num_classes == 2
    assert len(reviews.train) + len(reviews.val) + len(reviews.test) == 2982
    assert isinstance(reviews.train.raw_x[0], str) and reviews.train.x.dtype == np.float32
    assert reviews.num_features == reviews.tokenizer.max_len
    train_words = {w for text in reviews.train.raw_x for w in words(text)}
    test_only = {w for text in reviews.test.raw_x for w in words(text)} - train_words
    assert set(reviews.tokenizer.vocab[2:]) <= train_words  # no word of val or test leaked in
    assert test_only and not test_only & set(reviews.tokenizer.vocab)
    np.testing.assert_array_equal(reviews.test.x, reviews.tokenizer.encode(reviews.test.raw_x))
    np.testing.assert_array_equal(reviews.preprocessor(reviews.test.x), reviews.test.x)  # ids are not standardised


def test_the_splits_hold_different_texts_and_the_same_seed_gives_the_same_ones(reviews):
    parts = [set(s.raw_x) for s in (reviews.train, reviews.val, reviews.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    again = mlkit.load_dataset("reviews", seed=0)
    assert (again.test.raw_x == reviews.test.raw_x).all() and again.tokenizer == reviews.tokenizer


def test_make_dataset_tokenises_any_strings_and_with_tokenizer_refits_the_vocabulary():
    texts = np.array([f"{w} item {i}" for i in range(10) for w in ("good", "bad")])
    labels = np.array(["pos", "neg"] * 10)
    data = mlkit.make_dataset(texts, labels, seed=0)
    assert data.tokenizer is not None and data.train.raw_x.dtype.kind == "U"
    small = with_tokenizer(data, Tokenizer.fit(data.train.raw_x, max_words=2, max_len=3))
    assert small.tokenizer.size == 4 and small.num_features == 3
    assert (small.train.y == data.train.y).all() and (small.test.raw_x == data.test.raw_x).all()


# ---------------------------------------------------------------- the model and the predictor


def test_embedding_bag_ignores_padding_and_word_order():
    model = mlkit.EmbeddingBag(10, 2, dim=4, seed=0)
    x = jnp.array([[3.0, 4.0, 5.0, 0.0, 0.0], [5.0, 3.0, 4.0, 0.0, 0.0], [3.0, 4.0, 5.0, 0.0, 0.0]])
    out = np.asarray(model(x))
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)  # a bag: order does not count
    longer = np.asarray(model(jnp.array([[3.0, 4.0, 5.0, 0.0, 0.0, 0.0, 0.0]])))
    np.testing.assert_allclose(longer[0], out[0], atol=1e-6)  # neither does padding
    clipped = np.asarray(model(jnp.array([[-7.0, 99.0, 0.0]])))
    np.testing.assert_allclose(clipped, np.asarray(model(jnp.array([[0.0, 9.0, 0.0]]))), atol=1e-6)
    assert mlkit.count_params(model) == 10 * 4 + 4 * 2 + 2


def test_the_bag_learns_the_reviews(reviews, predictor):
    assert mlkit.infer.accuracy(predictor, reviews.test) > 0.72  # chance: 0.5


def test_text_predictor_takes_raw_strings_and_matches_the_model(bag, reviews, predictor):
    texts = list(reviews.test.raw_x[:20])
    numeric = mlkit.freeze(bag, preprocessor=reviews.preprocessor, labels=reviews.labels)
    assert isinstance(mlkit.freeze(bag, reviews), TextPredictor)  # freeze on a text set reads strings too
    np.testing.assert_allclose(mlkit.freeze(bag, reviews).predict_proba(texts), predictor.predict_proba(texts))
    np.testing.assert_allclose(predictor.predict_proba(texts), numeric.predict_proba(reviews.test.x[:20]), atol=1e-6)
    assert set(predictor.predict(texts)) <= {"negative", "positive"}
    assert predictor.compiles == predictor.numeric.compiles >= 1


def test_text_predictor_refuses_bad_input_and_reads_only_max_len_words(predictor):
    for bad in ("a single string", [""], [42], ["x" * (MAX_CHARS + 1)]):
        with pytest.raises(ValueError):
            predictor.predict(bad)
    long = " ".join(["terrible"] * predictor.tokenizer.max_len + ["wonderful"] * 200)
    np.testing.assert_allclose(
        predictor.predict_proba([long]), predictor.predict_proba([" ".join(["terrible"] * 40)]), atol=1e-6
    )


def test_freeze_text_needs_a_text_set(bag, digits):
    with pytest.raises(ValueError, match="not a text set"):
        freeze_text(bag, digits)


def test_route_sends_confident_answers_to_their_action_and_doubt_to_a_person():
    actions = {"negative": "refund", "positive": "thanks", "unsure": "person"}
    probs = np.array([[0.95, 0.05], [0.1, 0.9], [0.55, 0.45]])
    assert route(probs, ("negative", "positive"), actions, 0.8) == ["refund", "thanks", "person"]


# ---------------------------------------------------------------- the artifact carries the vocabulary


def test_the_jax_artifact_carries_the_tokenizer_and_answers_raw_strings(predictor, reviews, tmp_path):
    path = mlkit.save_predictor(predictor, tmp_path / "reviews-model")
    metadata = json.loads((path / "metadata.json").read_text())
    assert Tokenizer.from_dict(metadata["tokenizer"]) == predictor.tokenizer
    loaded = mlkit.load_predictor(path)
    assert isinstance(loaded, TextPredictor) and loaded.tokenizer == predictor.tokenizer
    texts = list(reviews.test.raw_x)
    np.testing.assert_allclose(loaded.predict_proba(texts), predictor.predict_proba(texts), atol=1e-6)
    with pytest.raises(ValueError, match="has no words"):
        loaded.predict([""])


def test_an_artifact_without_a_tokenizer_loads_as_before(trained, digits, tmp_path):
    loaded = mlkit.load_predictor(mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path / "digits"))
    assert type(loaded) is mlkit.Predictor
    assert "tokenizer" not in json.loads((tmp_path / "digits" / "metadata.json").read_text())


def test_a_malformed_or_mismatched_tokenizer_entry_is_named(predictor):
    metadata = {"input": {"shape": ["b", predictor.num_features]}, **text_metadata(predictor)}
    assert text_problem(metadata) is None and text_problem({"input": metadata["input"]}) is None
    assert "malformed" in text_problem({**metadata, "tokenizer": {"kind": "words"}})
    wrong = {**metadata, "input": {"shape": ["b", predictor.num_features + 1]}}
    assert "writes rows of 40 ids" in text_problem(wrong)
    assert with_text(predictor.numeric, {}) is predictor.numeric
    assert text_metadata(predictor.numeric) == {}


def test_the_onnx_file_carries_the_tokenizer_in_its_metadata(predictor, reviews, tmp_path, caplog):
    if os.environ.get("CI") != "true":  # in CI the extra is installed and this must run
        pytest.importorskip("jax2onnx", reason="needs the optional extra: pip install -e '.[onnx]'")
    with caplog.at_level(logging.WARNING):
        saved = mlkit.save_predictor(predictor, tmp_path / "reviews.onnx")
    assert not caplog.records, "the export is quiet: a learner's cell shows no converter WARNING"
    loaded = mlkit.load_predictor(saved)
    assert isinstance(loaded, TextPredictor) and loaded.tokenizer == predictor.tokenizer
    texts = list(reviews.test.raw_x)
    np.testing.assert_allclose(loaded.predict_proba(texts), predictor.predict_proba(texts), atol=1e-5)


# ---------------------------------------------------------------- the command line


def test_train_on_the_reviews_then_predict_a_file_of_messages(reviews, tmp_path, capsys):
    out = tmp_path / "bag"
    assert main(["train", "--data", "reviews", "--model", "bag", "--epochs", "3", "--out", str(out)]) == 0
    messages = tmp_path / "messages.txt"
    messages.write_text("Terrible, it broke after a day.\nGreat phone, works perfectly!\n\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(out), str(messages)]) == 0
    expected = mlkit.load_predictor(out).predict(read_texts(messages))
    assert capsys.readouterr().out.split() == list(expected) and len(expected) == 2  # one answer per message line
    gap = tmp_path / "gap.txt"
    gap.write_text("good phone\n\nbad phone\n", encoding="utf-8")
    assert main(["predict", str(out), str(gap)]) == 2  # skipped, line 3's answer would print as line 2's
    assert "line 2 is blank" in capsys.readouterr().err
    np.savetxt(tmp_path / "rows.csv", np.zeros((2, 3)), delimiter=",")
    assert main(["predict", str(out), str(tmp_path / "rows.csv")]) == 2
    assert "is a text model: it reads messages, not the numbers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--data", "digits", "--model", "bag"], "needs a text set"),
        (["--data", "reviews"], "holds texts"),
        (["--data", "reviews", "--model", "bag", "--hidden", "8"], "shape an MLP"),
        (["--data", "reviews", "--model", "bag", "--dropout", "0.2"], "no dropout"),
    ],
)
def test_train_refuses_a_model_that_does_not_fit_the_data(args, says, capsys):
    assert main(["train", *args, "--epochs", "1"]) == 2
    assert says in capsys.readouterr().err


def test_read_texts_keeps_lines_in_order_and_refuses_a_blank_an_empty_or_a_binary_file(tmp_path):
    (tmp_path / "a.txt").write_text("\ufeffone\n two \n\n \n", encoding="utf-8")
    assert read_texts(tmp_path / "a.txt") == ["one", " two "]  # blank lines at the end are the file's end
    (tmp_path / "gaps.txt").write_text("one\n\ntwo\n \nthree\n")
    with pytest.raises(ValueError, match=r"line 2 is blank \(and 1 more\)"):
        read_texts(tmp_path / "gaps.txt")
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="holds no text"):
        read_texts(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_texts(tmp_path / "bin.txt")
    with pytest.raises(ValueError, match="missing"):
        read_texts(tmp_path / "nope.txt")


# ---------------------------------------------------------------- the lesson's dashboards


def test_word_votes_are_what_each_word_adds_to_the_logits(bag, reviews):
    votes = word_votes(bag, reviews.tokenizer)
    ids = reviews.tokenizer.encode(["great"])  # one word: its logits are its vote plus the bias
    logits = np.asarray(bag(jnp.asarray(ids, jnp.float32)))[0]
    np.testing.assert_allclose(votes["great"] + np.asarray(bag.head.bias[...]), logits, rtol=1e-5, atol=1e-5)
    assert "great" in leaning(votes, 1, 50) and "bad" in leaning(votes, 0, 50)


def test_text_lab_refits_the_vocabulary_and_reports_the_run(reviews):
    lab = text_lab(reviews, threaded=False, render=False)
    lab.controls["epochs"].value = 2
    history = lab.set_value("max_words", 100)
    assert history is not None and history.epochs == 2
    assert lab.data.tokenizer.size == 102 and lab.model.vocab_size == 102
    assert f"{unknown_share(lab.data):.0%} of validation words unknown" in lab.status_text
    assert unknown_share(lab.data) > unknown_share(reviews)  # a smaller vocabulary knows fewer words


def test_message_lab_routes_a_typed_message_and_explains_an_empty_one(predictor):
    actions = {"negative": "offer a refund", "positive": "say thanks", "unsure": "pass to a person"}
    lab = message_lab(predictor, actions, message="terrible and broken", render=False)
    lab.refresh()
    assert lab.result["to"] == "offer a refund" and "the model reads: terrible and broken" in lab.status_text
    lab.set_value("threshold", 0.99)
    lab.set_value("message", "")
    assert lab.status_text.startswith("error:") and "no words" in lab.status_text
    with pytest.raises(ValueError, match="every label"):
        message_lab(predictor, {"negative": "refund"})
