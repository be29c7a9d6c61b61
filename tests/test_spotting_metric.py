"""The MEGC spotting metric on hand-made interval lists, and the spotting run's files read back."""

from __future__ import annotations

import json

import pytest

from datamodules.long_videos import MACRO, MICRO, Interval
from evaluation.predictions import EvaluationError
from evaluation.spotting import (
    DETECTIONS_CSV,
    SPOTTING_JSON,
    Counts,
    SpottedVideo,
    evaluate_spotting_run,
    interval_iou,
    is_spotting_run,
    match_video,
    read_spotting_run,
    spotting_scores,
    write_spotting_reports,
)
from spotting.detections import Detection


def det(onset: int, offset: int, kind: str = MICRO, score: float = 1.0) -> Detection:
    return Detection(onset, (onset + offset) // 2, offset, kind, score)


def gt(onset: int, offset: int, kind: str = MICRO, emotion: str | None = None) -> Interval:
    return Interval(onset=onset, offset=offset, kind=kind, emotion=emotion)


def test_iou_of_inclusive_intervals():
    assert interval_iou((0, 9), (0, 9)) == 1.0
    assert interval_iou((0, 9), (10, 19)) == 0.0
    # [0, 9] and [5, 14]: 5 frames shared of 15 -> 1/3 (inclusive ends: 10 frames each).
    assert interval_iou((0, 9), (5, 14)) == pytest.approx(1 / 3)
    assert interval_iou((3, 3), (3, 3)) == 1.0


def test_iou_exactly_half_is_a_true_positive_and_just_below_is_not():
    # [0, 9] vs [0, 4]: 5 shared of 10 -> exactly 0.5.
    assert interval_iou((0, 9), (0, 4)) == 0.5
    exact = match_video([det(0, 4)], [gt(0, 9)])
    assert (exact.counts[MICRO].tp, exact.counts[MICRO].fp, exact.counts[MICRO].fn) == (1, 0, 0)
    # [0, 9] vs [0, 3]: 4 of 10 -> 0.4.
    below = match_video([det(0, 3)], [gt(0, 9)])
    assert (below.counts[MICRO].tp, below.counts[MICRO].fp, below.counts[MICRO].fn) == (0, 1, 1)


def test_one_truth_two_detections_is_one_tp_one_fp():
    score = match_video([det(10, 19, score=0.2), det(11, 20, score=0.9)], [gt(10, 19)])
    assert (score.counts[MICRO].tp, score.counts[MICRO].fp, score.counts[MICRO].fn) == (1, 1, 0)
    # The better-overlapping detection (IoU 1.0) is the match, although the other scores higher.
    assert [m.detection_index for m in score.matches] == [0]
    assert score.false_positives == [1]


def test_greedy_by_iou_pairs_each_truth_with_its_best_detection():
    # Each detection passes with both truths (IoU 7/13 = 0.54 crosswise, 1.0 straight): matching in list
    # order would pair d0 with t0; by IoU each truth gets the detection that is its own interval.
    truths = [gt(0, 9, emotion="surprise"), gt(3, 12, emotion="happiness")]
    detections = [det(3, 12), det(0, 9)]
    assert interval_iou((3, 12), (0, 9)) == pytest.approx(7 / 13)
    score = match_video(detections, truths)
    assert score.counts[MICRO] == Counts(2, 0, 0)
    assert {(m.detection_index, m.truth_index) for m in score.matches} == {(0, 1), (1, 0)}
    assert all(m.iou == 1.0 for m in score.matches)


def test_empty_videos():
    nothing = match_video([], [])
    assert nothing.counts[MICRO] == Counts(0, 0, 0) and nothing.overall.f1 == 0.0
    only_truth = match_video([], [gt(0, 5), gt(20, 40, MACRO)])
    assert only_truth.counts[MICRO] == Counts(0, 0, 1) and only_truth.counts[MACRO] == Counts(0, 0, 1)
    only_detection = match_video([det(0, 5)], [])
    assert only_detection.counts[MICRO] == Counts(0, 1, 0)
    pooled = spotting_scores([("a", [], []), ("b", [det(0, 5)], [gt(0, 5)])])
    assert pooled.per_kind[MICRO] == Counts(1, 0, 0) and pooled.per_kind[MICRO].f1 == 1.0


def test_kinds_are_matched_apart():
    # A macro detection on a micro ground truth (identical interval) is an FP of macro and an FN of micro.
    score = match_video([det(0, 9, MACRO)], [gt(0, 9, MICRO)])
    assert score.counts[MICRO] == Counts(0, 0, 1)
    assert score.counts[MACRO] == Counts(0, 1, 0)
    assert score.matches == []


def test_pooled_f1_by_hand():
    videos = [
        # video a: micro TP, micro FP; macro TP.
        ("a", [det(0, 9), det(50, 59), det(100, 199, MACRO)], [gt(0, 9), gt(100, 200, MACRO)]),
        # video b: micro FN x2; macro FP.
        ("b", [det(300, 400, MACRO)], [gt(10, 19), gt(30, 39)]),
        # video c: micro TP.
        ("c", [det(5, 14)], [gt(6, 14)]),
    ]
    scores = spotting_scores(videos)
    micro, macro = scores.per_kind[MICRO], scores.per_kind[MACRO]
    assert micro == Counts(tp=2, fp=1, fn=2)
    assert macro == Counts(tp=1, fp=1, fn=0)
    assert micro.precision == pytest.approx(2 / 3) and micro.recall == pytest.approx(2 / 4)
    assert micro.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert macro.f1 == pytest.approx(2 / 3)
    assert scores.overall == Counts(3, 2, 2)
    assert scores.overall.f1 == pytest.approx(6 / 10)
    # Pooled, not the mean of per-video F1s (a: 2/3 micro, b: 0, c: 1 -> mean 0.556).
    assert micro.f1 == pytest.approx(4 / 7)


def test_matches_carry_the_truths_emotion_for_recognition():
    scores = spotting_scores([("v", [det(0, 9)], [gt(0, 9, emotion="happiness")])])
    (match,) = scores.matches
    assert match.video_id == "v" and match.truth.emotion == "happiness" and match.iou == 1.0


def _videos() -> list[SpottedVideo]:
    return [
        SpottedVideo("syn/a", "syn", "syn/s1", 30.0, 300, 0, [gt(10, 19, emotion="surprise")], [det(10, 19)]),
        SpottedVideo("syn/b", "syn", "syn/s2", 30.0, 300, 0, [gt(100, 160, MACRO)], []),
    ]


def test_run_files_round_trip_and_rescore(tmp_path):
    scores = write_spotting_reports(tmp_path, _videos(), {"spotter": {"p": 0.3}}, title="t")
    assert is_spotting_run(tmp_path)
    assert scores.per_kind[MICRO] == Counts(1, 0, 0) and scores.per_kind[MACRO] == Counts(0, 0, 1)
    record, videos = read_spotting_run(tmp_path)
    assert [v.video_id for v in videos] == ["syn/a", "syn/b"]
    assert videos[0].truths[0].emotion == "surprise" and videos[0].detections == [det(10, 19)]
    assert record["matches"][0]["truth"]["emotion"] == "surprise"
    # Another spotter's detections in detections.csv are what evaluate scores.
    (tmp_path / DETECTIONS_CSV).write_text(
        "video_id,onset,apex,offset,kind,score\nsyn/a,40,45,50,micro,1\nsyn/b,100,130,160,macro,2\n"
    )
    table = evaluate_spotting_run(tmp_path)
    assert "macro" in table
    metrics = json.loads((tmp_path / SPOTTING_JSON).read_text())["metrics"]
    assert (metrics["micro"]["tp"], metrics["micro"]["fp"], metrics["micro"]["fn"]) == (0, 1, 1)
    assert metrics["macro"]["f1"] == 1.0


def test_bad_detection_rows_are_named(tmp_path):
    write_spotting_reports(tmp_path, _videos(), {})
    (tmp_path / DETECTIONS_CSV).write_text("video_id,onset,apex,offset,kind,score\nsyn/zz,1,2,3,micro,1\n")
    with pytest.raises(EvaluationError, match=r"detections.csv: line 2: video 'syn/zz'"):
        read_spotting_run(tmp_path)
    (tmp_path / DETECTIONS_CSV).write_text("video_id,onset,apex,offset,kind,score\nsyn/a,9,2,3,micro,1\n")
    with pytest.raises(EvaluationError, match=r"line 2: detection needs onset <= apex <= offset"):
        read_spotting_run(tmp_path)
    assert not is_spotting_run(tmp_path / "nowhere")
