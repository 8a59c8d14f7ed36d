"""analyze_audio(): format recognition, RIFF/WAV parsing, duration and RMS."""

import math
import struct
import time

import pytest
import tts_probe
from tts_probe_testlib import (
    FLAC_BYTES,
    GOOD_WAV,
    MP3_BYTES,
    OGG_BYTES,
    RATE,
    chunk,
    encode_samples,
    riff_wav,
    sine_samples,
    sine_wav,
)

# RMS of a sine of amplitude 0.5: 0.5 / sqrt(2).
HALF_SINE_DBFS = 20 * math.log10(0.5 / math.sqrt(2))  # -9.03


def test_16_bit_wav_from_the_wave_module():
    info = tts_probe.analyze_audio(GOOD_WAV)
    assert info["error"] is None
    assert (info["format"], info["sample_rate"], info["channels"]) == ("wav", RATE, 1)
    assert (info["bits_per_sample"], info["encoding"], info["streaming"]) == (16, "pcm", False)
    assert info["duration_s"] == pytest.approx(0.3, abs=1e-4)
    assert info["rms_dbfs"] == pytest.approx(HALF_SINE_DBFS, abs=0.05)


@pytest.mark.parametrize(("bits", "encoding", "tolerance"), [
    (8, "pcm", 0.2),  # 8-bit quantisation costs a little accuracy
    (16, "pcm", 0.05),
    (24, "pcm", 0.05),
    (32, "pcm", 0.05),
    (32, "float", 0.05),
    (64, "float", 0.05),
])
def test_every_supported_sample_format_is_measured(bits, encoding, tolerance):
    frames = RATE // 10
    data = encode_samples(sine_samples(frames), bits, encoding)
    info = tts_probe.analyze_audio(riff_wav(data, bits=bits, tag=3 if encoding == "float" else 1))
    assert info["error"] is None
    assert (info["bits_per_sample"], info["encoding"]) == (bits, encoding)
    assert info["duration_s"] == pytest.approx(0.1, abs=1e-4)
    assert info["rms_dbfs"] == pytest.approx(HALF_SINE_DBFS, abs=tolerance)


def test_quiet_24_bit_audio_is_not_mistaken_for_loud():
    # A sign or byte-order slip in the 24-bit widening would turn -60 dBFS into noise near 0.
    data = encode_samples(sine_samples(4000, amplitude=0.001), 24)
    info = tts_probe.analyze_audio(riff_wav(data, bits=24))
    assert info["rms_dbfs"] == pytest.approx(20 * math.log10(0.001 / math.sqrt(2)), abs=0.1)


def test_stereo_duration_counts_frames_not_samples():
    info = tts_probe.analyze_audio(sine_wav(duration_s=0.2, channels=2))
    assert info["channels"] == 2
    assert info["duration_s"] == pytest.approx(0.2, abs=1e-4)


def test_wave_format_extensible_uses_the_subformat():
    data = encode_samples(sine_samples(RATE // 10), 24)
    info = tts_probe.analyze_audio(riff_wav(data, bits=24, extensible=True))
    assert info["error"] is None
    assert (info["encoding"], info["bits_per_sample"]) == ("pcm", 24)
    assert info["rms_dbfs"] == pytest.approx(HALF_SINE_DBFS, abs=0.05)


def test_chunks_before_data_and_odd_sizes_are_skipped():
    extra = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00tts-a") + chunk(b"odd ", b"abc")
    data = encode_samples(sine_samples(2205), 16)
    info = tts_probe.analyze_audio(riff_wav(data, before_data=extra))
    assert info["error"] is None
    assert info["duration_s"] == pytest.approx(0.1, abs=1e-4)


@pytest.mark.parametrize(("riff_size", "data_size"), [(0xFFFFFFFF, 0xFFFFFFFF), (0, 0)])
def test_streaming_sizes_mean_data_runs_to_the_end(riff_size, data_size):
    data = encode_samples(sine_samples(2205), 16)
    info = tts_probe.analyze_audio(riff_wav(data, riff_size=riff_size, data_size=data_size))
    assert info["error"] is None
    assert info["streaming"] is True
    assert info["duration_s"] == pytest.approx(0.1, abs=1e-4)


def test_empty_data_chunk_in_a_finished_file_is_zero_seconds():
    # data size 0 with a real RIFF size is an empty file, not a stream.
    info = tts_probe.analyze_audio(riff_wav(b"", riff_size=36))
    assert (info["error"], info["streaming"], info["duration_s"], info["rms_dbfs"]) == (None, False, 0.0, None)


def test_truncated_data_chunk_names_declared_and_present_sizes():
    wav = riff_wav(encode_samples(sine_samples(1000), 16), data_size=4000)
    info = tts_probe.analyze_audio(wav)
    assert info["error"] == "WAV data chunk declares 4000 bytes but only 2000 are present (truncated)"


def test_truncated_chunk_before_data_is_reported():
    # What follows the LIST header: b"short" plus the 8-byte header of the empty data chunk.
    wav = riff_wav(b"", before_data=b"LIST" + struct.pack("<I", 500) + b"short")
    assert tts_probe.analyze_audio(wav)["error"] == (
        "WAV 'LIST' chunk declares 500 bytes but only 13 are present (truncated)")


@pytest.mark.parametrize(("wav", "error"), [
    (b"RIFF\x04\x00\x00\x00WAVE", "WAV has no fmt chunk"),
    (riff_wav(b"")[:36], "WAV has no data chunk"),
    (riff_wav(bytes(100), tag=2, bits=4), "unsupported WAV encoding (format tag 0x0002, 4 bits per sample)"),
    (riff_wav(bytes(100), tag=3, bits=16), "unsupported WAV encoding (format tag 0x0003, 16 bits per sample)"),
    (riff_wav(bytes(100), channels=0), "WAV fmt chunk declares 0 channels at 22050 Hz"),
    (riff_wav(struct.pack("<2f", math.nan, 0.5), bits=32, tag=3), "WAV float samples contain NaN or infinity"),
])
def test_broken_wav_is_rejected_with_the_reason(wav, error):
    assert tts_probe.analyze_audio(wav)["error"] == error


def test_digital_silence_reports_the_floor():
    info = tts_probe.analyze_audio(riff_wav(bytes(4410)))
    assert info["rms_dbfs"] == tts_probe.SILENCE_FLOOR_DBFS == -120.0


def test_long_body_is_sampled_across_its_whole_length():
    # 3 minutes: loud first half, silent second half. Sampling only the start would read the
    # full level (-9 dB); windows spread over the body see half the energy (-12 dB).
    frames = 180 * RATE
    loud = encode_samples(sine_samples(50), 16) * (frames // 100)
    wav = riff_wav(loud + bytes(len(loud)))
    started = time.perf_counter()
    info = tts_probe.analyze_audio(wav)
    elapsed = time.perf_counter() - started
    assert info["duration_s"] == pytest.approx(180.0, abs=1e-3)
    assert info["rms_dbfs"] == pytest.approx(HALF_SINE_DBFS - 3.01, abs=0.3)
    assert elapsed < 0.5, f"analysis of a {len(wav)} byte body took {elapsed:.2f} s"


@pytest.mark.parametrize(("body", "audio_format"), [
    (MP3_BYTES, "mp3"),
    (MP3_BYTES[10:], "mp3"),  # bare frame sync, no ID3 tag
    (OGG_BYTES, "ogg"),
    (FLAC_BYTES, "flac"),
])
def test_compressed_formats_are_recognised_by_magic(body, audio_format):
    info = tts_probe.analyze_audio(body)
    assert (info["format"], info["error"], info["duration_s"], info["rms_dbfs"]) == (audio_format, None, None, None)


@pytest.mark.parametrize("body", [
    b"\xff\xf1\x50\x80" + bytes(20),  # ADTS AAC: same sync word, layer bits 00
    b"\xff\xff\xff\xff" + bytes(20),  # reserved version, bad bitrate
    b"RIFF\x00\x00\x00\x00AVI LIST",  # RIFF but not WAVE
])
def test_lookalike_headers_are_not_audio(body):
    info = tts_probe.analyze_audio(body)
    assert info["format"] is None
    assert info["error"].startswith("body is not recognised audio")


def test_html_is_not_audio_and_the_reason_quotes_it():
    info = tts_probe.analyze_audio(b"<!DOCTYPE html>\n<html><body>It works</body></html>")
    assert info["error"] == ("body is not recognised audio (starts with"
                             " '<!DOCTYPE html> <html><body>It works</body></html>')")


def test_empty_body():
    assert tts_probe.analyze_audio(b"")["error"] == "empty body"


def test_bytes_like_inputs_are_accepted():
    for body in (bytearray(GOOD_WAV), memoryview(GOOD_WAV)):
        assert tts_probe.analyze_audio(body)["rms_dbfs"] == pytest.approx(HALF_SINE_DBFS, abs=0.05)
