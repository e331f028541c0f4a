"""A learner's own CSV or NPZ file: encodings, bad cells, bad arrays, size limits, and big files read in C."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

import mlkit
from mlkit.data import files


def write(tmp_path, text, name="t.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def table(rows=40, header="a,b,label\n", label=lambda i: i % 2, newline="\n"):
    return header.replace("\n", newline) + "".join(f"{i},{i * 0.5},{label(i)}{newline}" for i in range(rows))


@pytest.mark.parametrize("header", ["a,b,label\n", ""])
def test_byte_order_mark_and_crlf_are_read_as_text(tmp_path, header):
    plain = mlkit.data.files.read_table(write(tmp_path, table(header=header), "plain.csv"))
    excel = write(tmp_path, "\ufeff" + table(header=header, newline="\r\n"), "excel.csv")
    x, y = mlkit.data.files.read_table(excel)
    assert len(x) == 40 and y.dtype.kind == "f"  # no row taken for a header, no '\r' in a label
    np.testing.assert_array_equal(x, plain[0])
    np.testing.assert_array_equal(y, plain[1])
    if header:  # the first column's name is 'kind', not '\ufeffkind'
        first = write(tmp_path, "\ufeffkind,a\r\n" + "".join(f"{i % 2},{i}\r\n" for i in range(40)), "first.csv")
        assert mlkit.load_dataset(first, label="kind").labels == (0, 1)


def test_first_row_is_data_when_only_its_label_is_text(tmp_path):
    kinds = write(tmp_path, "".join(f"{i},{i + 1},{'cat' if i % 2 else 'dog'}\n" for i in range(40)))
    assert mlkit.load_dataset(kinds).labels == ("cat", "dog")
    assert len(files.read_table(kinds)[0]) == 40
    numbered = write(tmp_path, "0,1,label\n" + "".join(f"{i},{i + 1},{i % 2}\n" for i in range(40)), "n.csv")
    assert len(files.read_table(numbered)[0]) == 40  # '0,1,label' over numbers is a header


@pytest.mark.parametrize(
    "cell, problem",
    [
        ("", "empty"),
        ("nan", "NaN or infinite"),
        (" NaN ", "NaN or infinite"),
        ("inf", "NaN or infinite"),
        ("\x00", r"not text \(it holds a NUL byte\)"),
        ("b\x00", r"not text \(it holds a NUL byte\)"),
    ],
)
@pytest.mark.parametrize("labels", ["numbers", "text"])
def test_a_missing_label_is_an_error_not_a_class(tmp_path, cell, problem, labels):
    text = table(rows=60, label=lambda i: cell if i == 41 else (i % 2 if labels == "numbers" else "ab"[i % 2]))
    with pytest.raises(ValueError, match=rf"line 43: the label .* is {problem}; every row needs a label"):
        mlkit.load_dataset(write(tmp_path, text))


@pytest.mark.parametrize("cell", ["1e39", "-1e39", "inf", "nan", "1e400"])
def test_features_must_be_finite_in_float32(tmp_path, cell):
    text = "a,b,label\n" + "".join(f"{cell if i == 7 else i},{i},{i % 2}\n" for i in range(30))
    with pytest.raises(ValueError, match=rf"line 9, column 1 \('a'\): '{cell}' is not a finite 32-bit number"):
        mlkit.load_dataset(write(tmp_path, text))


def test_a_finite_cell_too_large_to_standardise_names_float32_not_nan(tmp_path):
    text = "a,b,label\n" + "".join(f"{'1e20' if i == 7 else i},{i},{i % 2}\n" for i in range(30))
    with pytest.raises(ValueError, match=r"Feature 0 cannot be standardised: it holds 1e\+20.*float32") as caught:
        mlkit.load_dataset(write(tmp_path, text))
    assert "NaN" not in str(caught.value)


def test_chunks_read_in_c_match_the_row_by_row_reader_and_count_lines(tmp_path, monkeypatch):
    rows = [f"{i * 0.37:.6f},{-i},{'ab'[i % 3 == 0]}" for i in range(600)]
    rows[100] = '"3.5","4",a'  # quoted: this chunk goes through the csv module
    rows[300] = ""  # a blank line
    path = write(tmp_path, "x1,x2,kind\r\n" + "\r\n".join(rows) + "\r\n")
    whole = files.read_table(path)
    monkeypatch.setattr(files, "_CHUNK", 5)  # a line or two per chunk; the header fills the first
    chunked = files.read_table(path)
    assert whole[0].shape == (599, 2) and whole[0][100].tolist() == [3.5, 4.0]
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])
    rows[500] = "1.0,x,a"
    with pytest.raises(ValueError, match=r"line 502, column 2 \('x2'\): 'x' is not a number"):
        files.read_table(write(tmp_path, "x1,x2,kind\n" + "\n".join(rows)))


def test_a_plain_csv_is_parsed_in_c_not_row_by_row(tmp_path, monkeypatch):
    path = write(tmp_path, table(rows=2000) + "\n\n")  # blank lines at the end change nothing
    monkeypatch.setattr(files, "_parse_rows", lambda *a: pytest.fail("a plain file went through the csv module"))
    x, y = files.read_table(path)
    assert x.shape == (2000, 2) and x.dtype == np.float32 and y[:3].tolist() == [0, 1, 0]


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "a,b,kind\n1,2,caf\u00e9\n3,4,tea\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"t\.csv, line 2: byte 0xe9 is not UTF-8 text; save the file as UTF-8"):
        mlkit.load_dataset(path)


def npz(tmp_path, name="t.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.ones((30, 2), complex), np.arange(30) % 2, r"x has dtype complex128: .*x\.real"),
        (np.ones((30, 2)), np.ones((30, 2)), r"y has shape \(30, 2\); expected one label per example.*argmax"),
        (np.ones((30, 2)), np.arange(29) % 2, "x has 30 rows but y has 29; they must match"),
        (np.full((30, 2), 1e39), np.arange(30) % 2, r"x\[0, 0\] = 1e\+39 is not a finite 32-bit number"),
        (np.ones((30, 2)), np.where(np.arange(30) == 4, np.nan, 0.5), r"y\[4\] = nan is NaN or infinite"),
        (np.ones((30, 2)), np.array(["a", "b", ""] * 10), r"y\[2\] = '' is empty"),
        (np.array(["1"] * 30), np.arange(30) % 2, "x has dtype <U1: store numbers"),
        (np.ones((30, 2)), np.array([b"a", b"b"] * 15), r"y has dtype \|S1: .*astype\(str\)"),
    ],
)
def test_bad_npz_arrays_name_the_file_and_the_fix(tmp_path, x, y, message):
    with pytest.raises(ValueError, match=rf"bad\.npz: {message}"):
        mlkit.load_dataset(npz(tmp_path, "bad.npz", x=x, y=y))


def bomb(tmp_path, shape, data=b""):
    """An NPZ whose x.npy declares ``shape`` (float32) in its header, followed by ``data``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    labels = io.BytesIO()
    np.lib.format.write_array(labels, np.zeros(shape[0], np.int8))
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", header.getvalue() + data)
        archive.writestr("y.npy", labels.getvalue())
    return path


def test_npz_past_the_size_limit_is_refused_before_decompressing(tmp_path):
    declared = bomb(tmp_path, (1 << 10, 1 << 20))  # 4 GiB of float32 declared in a file of a few hundred bytes
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"bomb\.npz declares arrays of 4,096\.0 MiB once decompressed.*max_bytes="):
        mlkit.load_dataset(declared)
    assert tracemalloc.get_traced_memory()[1] < 1 << 20
    tracemalloc.stop()
    expands = bomb(tmp_path, (1 << 16, 16), bytes(1 << 22))  # 4 MiB of zeros, compressed to a few kB
    assert expands.stat().st_size < 1 << 15
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"above the limit of 1\.0 MiB"):
        files.read_table(expands, max_bytes=1 << 20)
    assert tracemalloc.get_traced_memory()[1] < 1 << 20
    tracemalloc.stop()
    assert files.read_table(expands, max_bytes=5 << 20)[0].shape == (1 << 16, 16)


def test_size_limit_covers_csv_and_can_be_raised(tmp_path, monkeypatch):
    path = write(tmp_path, table(rows=100))
    with pytest.raises(ValueError, match=r"t\.csv is [\d,]+ bytes, above the limit of 100 bytes.*MLKIT_MAX_DATA_BYTES"):
        mlkit.load_dataset(path, max_bytes=100)
    monkeypatch.setenv("MLKIT_MAX_DATA_BYTES", "100")
    with pytest.raises(ValueError, match="above the limit"):
        mlkit.load_dataset(path)
    assert len(files.read_table(path, max_bytes=10_000)[0]) == 100  # the argument wins over the environment
    monkeypatch.setenv("MLKIT_MAX_DATA_BYTES", "1e9")
    with pytest.raises(ValueError, match="MLKIT_MAX_DATA_BYTES must be a whole number of bytes, got '1e9'"):
        mlkit.load_dataset(path)


def test_file_options_are_refused_for_other_sources():
    with pytest.raises(
        ValueError, match=r"label= and max_bytes= apply to your own \.csv or \.npz file, not to 'digits'"
    ):
        mlkit.load_dataset("digits", label="kind")
    with pytest.raises(ValueError, match="not to 'moons'"):
        mlkit.load_dataset("moons", max_bytes=10)


def test_label_option_is_refused_for_npz(tmp_path):
    with pytest.raises(ValueError, match=r"label= picks a CSV column; .*t\.npz is an NPZ file.*array 'y'"):
        mlkit.load_dataset(npz(tmp_path, x=np.ones((30, 2)), y=np.arange(30) % 2), label="kind")


def test_a_quoted_label_spanning_lines_stays_whole_across_chunks(tmp_path, monkeypatch):
    rows = [f'{i},{i * 2},"kind\n{i % 2}"' for i in range(40)]
    path = write(tmp_path, "a,b,label\n" + "\n".join(rows) + "\n")
    whole = files.read_table(path)
    monkeypatch.setattr(files, "_CHUNK", 7)  # every chunk would end inside a quoted field
    chunked = files.read_table(path)
    assert whole[0].shape == (40, 2) and set(whole[1]) == {"kind\n0", "kind\n1"}
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_a_header_declaring_more_than_the_file_holds_is_refused_even_under_a_raised_limit(tmp_path):
    declared = bomb(tmp_path, (1 << 20, 1 << 20))  # 4 TiB of float32 declared, no data behind it
    with pytest.raises(ValueError, match=r"bomb\.npz is not a readable \.npz.*declares an array of shape.*holds 0"):
        files.read_table(declared, max_bytes=1 << 50)


def test_a_field_past_the_csv_limit_is_a_clear_error(tmp_path):
    text = 'a,b,label\n1,2,0\n"' + "9" * 200_000 + '",3,1\n' + "".join(f"{i},{i},{i % 2}\n" for i in range(30))
    with pytest.raises(ValueError, match=r"cannot be read as a CSV table .*field larger than field limit.*quote"):
        mlkit.load_dataset(write(tmp_path, text))
