"""The one KITTI format module: label lines, split files, the difficulty rule."""
import numpy as np
import pytest

from kd3d.data.kitti_format import (dontcare_line, format_label_line, gt_ignored, read_kitti_label,
                                    read_label_file, read_split_file, read_split_ids, write_split_file)


def test_label_line_round_trip(tmp_path):
    line = format_label_line("Car", 0.25, 1, -1.5, (10, 20.5, 30, 60.25), (1.5, 1.7, 4.2), (1.0, 1.6, 12.0), 0.3)
    assert line == "Car 0.25 1 -1.50 10.00 20.50 30.00 60.25 1.50 1.70 4.20 1.00 1.60 12.00 0.30"
    res = format_label_line("Pedestrian", None, -1, 0.123456, (1, 2, 3, 4), (1, 2, 3), (4, 5, 6), 0.5, 0.75,
                            digits=4, score_digits=6)
    assert res == "Pedestrian -1 -1 0.1235 1.00 2.00 3.00 4.00 1.0000 2.0000 3.0000 4.0000 5.0000 6.0000 0.5000 0.750000"
    path = tmp_path / "000000.txt"
    path.write_text(line + "\n\n" + dontcare_line((1, 2, 3, 4)) + "\n")
    lab = read_kitti_label(path)
    assert lab["name"].tolist() == ["Car", "DontCare"]
    np.testing.assert_allclose(lab["bbox"][0], [10, 20.5, 30, 60.25])
    np.testing.assert_allclose(lab["dimensions"][0], [1.5, 1.7, 4.2])
    np.testing.assert_allclose(lab["location"][1], [-1000, -1000, -1000])
    assert lab["occlusion"].tolist() == [1, -1] and np.isnan(lab["score"]).all()
    (tmp_path / "r.txt").write_text(res + "\n")
    types, vals = read_label_file(tmp_path / "r.txt", result=True)
    assert types == ["Pedestrian"] and vals[0, 14] == 0.75 and vals[0, 0] == -1


@pytest.mark.parametrize("text,msg", [
    ("Car 0 0 0 1 2 3 4 1 1 1 1 1 1\n", r"r\.txt:1: expected 16 fields .*got 14"),
    ("Car 0 0 0 1 2 3 4 1 1 1 1 1 1 0 0.5\n" * 2 + "Car 0 0 0 1 2 3 4 1 1 1 1 1 1 0 0.5 7\n",
     r"r\.txt:3: expected 16 fields .*got 17"),
    ("Car 0 0 0 1 2 3 4 1 1 1 1 1 1 0 0.5\nCar 0 0 0 1 2 3 x4 1 1 1 1 1 1 0 0.5\n",
     r"r\.txt:2: field 8 \(y2\) is not a number: 'x4'"),
])
def test_result_line_errors_name_file_and_line(tmp_path, text, msg):
    (tmp_path / "r.txt").write_text(text)
    with pytest.raises(ValueError, match=msg):
        read_label_file(tmp_path / "r.txt", result=True)


def test_gt_file_score_column_ignored(tmp_path):
    (tmp_path / "g.txt").write_text("Car 0 0 0 1 2 3 4 1 1 1 1 1 1 0 0.5\n")
    _, vals = read_label_file(tmp_path / "g.txt")
    assert np.isnan(vals[0, 14])
    (tmp_path / "g.txt").write_text("Car 0 0 0 1 2 3 4 1 1 1 1 1 1 0 0.5 0\n")
    with pytest.raises(ValueError, match=r"g\.txt:1: expected 15 or 16 fields"):
        read_label_file(tmp_path / "g.txt")


def test_gt_ignored_rule():
    # height <= 40 is ignored at easy, <= 25 at moderate/hard; occlusion/truncation above the max too
    h = np.array([40.0, 40.01, 25.0, 25.01])
    assert gt_ignored(0, h, [0] * 4, [0.0] * 4).tolist() == [True, False, True, True]
    assert gt_ignored(1, h, [0] * 4, [0.0] * 4).tolist() == [False, False, True, False]
    assert gt_ignored(2, [30, 30, 30], [2, 3, 0], [0.5, 0.0, 0.51]).tolist() == [False, True, True]


def test_split_files(tmp_path):
    write_split_file(tmp_path / "ImageSets" / "val.txt", ["000001", "000007"])
    assert read_split_ids(tmp_path, "val") == ["000001", "000007"]
    with pytest.raises(ValueError, match="unknown KITTI split 'valid'"):
        read_split_ids(tmp_path, "valid")
    with pytest.raises(FileNotFoundError, match=r"split file not found: .*train\.txt"):
        read_split_ids(tmp_path, "train")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty\.txt: split file lists no frames"):
        read_split_file(tmp_path / "empty.txt")
