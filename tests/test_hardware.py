"""The hardware a result was computed on: recorded in provenance, compared by `reproduce`.

TensorFlow promises the same outputs from the same inputs "on the same hardware" only: oneDNN picks its
kernels by instruction set (AMX, AVX-512 BF16, AVX2), so one seeded training gives other weights on
another CPU. A rerun elsewhere must say so instead of reading as a broken seed.
"""

import pytest

from reproml.inspect.reproduce import Reproduction
from reproml.provenance import hardware_differences, hardware_fingerprint, hardware_summary

pytestmark = pytest.mark.unit

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx avx2 fma avx512f avx512_vnni avx512_bf16\n"
GRAVITON = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


def test_the_fingerprint_names_the_cpu_and_the_instruction_sets_that_change_float_results():
    xeon = hardware_fingerprint(XEON, environ={"CUDA_VISIBLE_DEVICES": ""})
    assert xeon["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert xeon["cpu_flags"] == ["avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                 "amx_tile", "amx_bf16", "amx_int8"]  # fpu, sse: no kernel choice hangs on them
    assert xeon["gpus"] == [] and xeon["cpus"] >= 1
    assert hardware_fingerprint(GRAVITON)["cpu_flags"] == ["asimd", "sve", "bf16", "i8mm"]
    live = hardware_fingerprint()
    assert live["cpu"] and live["machine"] and live["cpus"] >= 1


def test_differences_name_what_changed_and_nothing_when_the_machine_is_the_same():
    xeon = hardware_fingerprint(XEON, environ={"CUDA_VISIBLE_DEVICES": "-1"})
    epyc = {**hardware_fingerprint(EPYC, environ={"CUDA_VISIBLE_DEVICES": "-1"}), "cpus": xeon["cpus"]}
    assert hardware_differences(xeon, dict(xeon)) == []
    assert hardware_differences(None, epyc) == []  # made before hardware was recorded: nothing to say
    found = hardware_differences(xeon, epyc)
    assert found[0].startswith("CPU Intel(R) Xeon(R) Platinum 8480+ (") and "AMD EPYC 9R14" in found[0]
    assert found[1] == "instruction sets avx512_fp16 only then, amx_tile only then, amx_bf16 only then, amx_int8 only then"
    assert len(found) == 2
    assert hardware_differences({**epyc, "gpus": ["NVIDIA H200"]}, epyc) == ["GPUs NVIDIA H200 then, none now"]
    assert hardware_differences({**epyc, "cpus": 16}, {**epyc, "cpus": 2}) == ["16 CPUs then, 2 now"]


def test_the_summary_is_one_line_with_the_widest_float_features():
    xeon = {**hardware_fingerprint(XEON, environ={"CUDA_VISIBLE_DEVICES": ""}), "cpus": 2}
    assert hardware_summary(xeon) == "Intel(R) Xeon(R) Platinum 8480+, 2 CPUs, amx_bf16, avx512_bf16"
    assert hardware_summary({**xeon, "cpu_flags": [], "gpus": ["NVIDIA H200"]}) == (
        "Intel(R) Xeon(R) Platinum 8480+, 2 CPUs, NVIDIA H200")
    assert hardware_summary(None) is None


def test_a_changed_fingerprint_on_other_hardware_still_fails_but_says_why():
    changed = {"model.ipynb": {"old": "a" * 64, "new": "b" * 64, "expected_identical": True}}
    same_machine = Reproduction("model@1", "model@2", "reproduce-1", fingerprints=changed)
    assert same_machine.failures == ["weights fingerprint of /model.ipynb changed: aaaaaaaaaaaa -> bbbbbbbbbbbb"]
    elsewhere = Reproduction("model@1", "model@2", "reproduce-1", fingerprints=changed,
                             hardware=["CPU Intel then, AMD now"])
    [failure] = elsewhere.failures
    assert "expected where the hardware differs" in failure and "rerun on the machine the commit records" in failure
