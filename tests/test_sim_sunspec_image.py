"""Our SunSpec encoder, checked against pysunspec2's own decoder (an independent implementation)."""

from __future__ import annotations

import re
import struct

import pytest
from sunspec2 import device as ss_device

from agent.sim.sunspec_image import (
    END_MODEL_ID,
    SUNS_MARKER,
    EncodeError,
    RegisterImage,
    encode_chain,
    encode_model,
    load_model_def,
    symbol_value,
)


def decode(block: list[int]) -> ss_device.Model:
    data = b"".join(struct.pack(">H", r) for r in block[2:])
    data = struct.pack(">HH", block[0], block[1]) + data
    return ss_device.Model(block[0], 0, block[1], data=data)


def test_model_103_values_round_trip() -> None:
    values = {
        "W": 7234.0, "WH": 1_234_567, "PhVphA": 231.2, "PhVphB": 229.8, "Hz": 50.01, "A": 10.57,
        "AphA": 3.52, "PF": 99.5, "DCV": 612.3, "DCW": 7400, "TmpCab": 41.5, "St": "MPPT", "Evt1": 0b101,
    }
    block = encode_model(103, values)
    assert block[:2] == [103, 50] and len(block) == 52
    m = decode(block)
    assert m.W.cvalue == 7234
    assert m.WH.cvalue == 1_234_567
    assert m.PhVphA.cvalue == pytest.approx(231.2)
    assert m.PhVphB.cvalue == pytest.approx(229.8)
    assert m.Hz.cvalue == pytest.approx(50.01)
    assert m.A.cvalue == pytest.approx(10.57)
    assert m.PF.cvalue == pytest.approx(99.5)
    assert m.DCV.cvalue == pytest.approx(612.3)
    assert m.TmpCab.cvalue == pytest.approx(41.5)
    assert m.St.value == 4
    assert m.Evt1.value == 0b101


def test_unset_points_carry_their_sentinel() -> None:
    block = encode_model(103, {"W": 100.0})
    m = decode(block)
    for p in load_model_def(103).points:
        if p.name not in ("W", "W_SF"):
            assert getattr(m, p.name).value is None, p.name  # pysunspec2 reads every sentinel as None
    offs = {"A": 0, "WH": 22, "St": 36, "Evt1": 38, "TmpCab": 31}
    assert block[2 + offs["A"]] == 0xFFFF  # uint16
    assert block[2 + offs["WH"] : 2 + offs["WH"] + 2] == [0, 0]  # acc32 -> 0
    assert block[2 + offs["St"]] == 0xFFFF  # enum16
    assert block[2 + offs["Evt1"] : 2 + offs["Evt1"] + 2] == [0xFFFF, 0xFFFF]  # bitfield32
    assert block[2 + offs["TmpCab"]] == 0x8000  # int16
    assert block[2 + 4] == 0x8000  # A_SF: sunssf not implemented when no current is given


def test_scale_factor_is_finest_that_fits_or_pinned() -> None:
    m = decode(encode_model(103, {"W": 2500.55}))
    assert m.W_SF.value == -1 and m.W.cvalue == pytest.approx(2500.6)
    m = decode(encode_model(103, {"W": 25000.0}))
    assert m.W_SF.value == 0
    m = decode(encode_model(103, {"W": 250000.0}))
    assert m.W_SF.value == 1 and m.W.cvalue == 250000
    m = decode(encode_model(103, {"W": 1234.0, "W_SF": 1}))
    assert m.W.cvalue == 1230


def test_negative_values_in_signed_points() -> None:
    m = decode(encode_model(203, {"W": -4321.0, "PF": -95.0, "TotWhImp": 9_000_000, "TotWhExp": 42}))
    assert m.W.cvalue == -4321
    assert m.PF.cvalue == pytest.approx(-95.0)
    assert m.TotWhImp.cvalue == 9_000_000
    assert m.TotWhExp.cvalue == 42


def test_model_1_strings_and_solaredge_length() -> None:
    values = {"Mn": "SolarEdge", "Md": "SE9K", "SN": "7E123456", "Vr": "0004.0012", "DA": 1}
    std = encode_model(1, values)
    assert std[1] == 66
    se = encode_model(1, values, length=65)
    assert se[1] == 65 and se[2:] == std[2:67]
    m = decode(std)
    assert (m.Mn.value, m.Md.value, m.SN.value, m.Vr.value, m.DA.value) == ("SolarEdge", "SE9K", "7E123456", "0004.0012", 1)
    assert m.Opt.value is None


def test_model_120_nameplate() -> None:
    m = decode(encode_model(120, {"DERTyp": 4, "WRtg": 36000, "VARtg": 36000}))
    assert m.WRtg.cvalue == 36000 and m.DERTyp.value == 4


def test_model_160_repeating_modules() -> None:
    modules = [{"ID": i + 1, "IDStr": f"PV{i + 1}", "DCW": 1000.0 + i, "DCV": 600.5, "DCA": 1.66, "DCWH": 5000 + i} for i in range(3)]
    block = encode_model(160, {"DCW_SF": 0, "DCWH_SF": 0}, repeats={"module": modules})
    assert block[1] == 8 + 3 * 20
    m = decode(block)
    assert m.N.value == 3
    assert [mod.DCW.cvalue for mod in m.module] == [1000, 1001, 1002]
    assert [mod.IDStr.value for mod in m.module] == ["PV1", "PV2", "PV3"]
    assert m.module[1].DCWH.cvalue == 5001
    assert m.module[0].DCV.cvalue == pytest.approx(600.5)


@pytest.mark.parametrize(
    ("model_id", "values"),
    [
        (101, {"W": 3000.0, "PhVphA": 230.0, "WH": 10}),
        (102, {"W": 3000.0, "PhVphB": 231.0, "WH": 10}),
        (201, {"W": -500.0, "TotWhImp": 77}),
        (202, {"W": 500.0, "TotWhExp": 77}),
        (204, {"W": 1500.0, "TotWhImp": 123456}),
    ],
)
def test_other_models(model_id: int, values: dict[str, float]) -> None:
    block = encode_model(model_id, values)
    assert block[0] == model_id and block[1] == len(block) - 2 == load_model_def(model_id).fixed_length
    m = decode(block)
    for name, value in values.items():
        assert getattr(m, name).cvalue == pytest.approx(value, abs=0.11), name


def test_chain_layout_and_image() -> None:
    chain = encode_chain([encode_model(1, {"Mn": "x"}), encode_model(203, {"W": 1.0})])
    assert chain[:2] == list(SUNS_MARKER)
    assert chain[2:4] == [1, 66]
    assert chain[2 + 68 : 2 + 68 + 2] == [203, 105]
    assert chain[-2:] == [END_MODEL_ID, 0]
    image = RegisterImage(40000, tuple(chain))
    assert image.read(40000, 4) == [0x5375, 0x6E53, 1, 66]
    assert image.read(39999, 2) is None
    assert image.read(40000 + len(chain) - 1, 2) is None


def test_accumulator_rolls_over() -> None:
    block = encode_model(103, {"WH": 2**32 + 5, "WH_SF": 0})
    assert decode(block).WH.cvalue == 5


@pytest.mark.parametrize(
    ("model_id", "values", "message"),
    [
        (103, {"Watts": 1.0}, "model 103 has no point(s) Watts"),
        (103, {"W": 40000.0, "W_SF": 0}, "model 103 point W"),
        (103, {"W": "lots"}, "expected a number"),
        (103, {"WH": -1.0}, "accumulator cannot be negative"),
        (1, {"Mn": "x" * 33}, "longer than 32 bytes"),
        (999, {}, "no definition"),
    ],
)
def test_errors_name_the_point(model_id: int, values: dict[str, object], message: str) -> None:
    with pytest.raises(EncodeError, match=re.escape(message)):
        encode_model(model_id, values)


def test_symbol_lookup() -> None:
    assert symbol_value(103, "Evt1", "GROUND_FAULT") == 0
    assert symbol_value(103, "St", "SLEEPING") == 2
    with pytest.raises(EncodeError, match="no symbol 'NOPE'"):
        symbol_value(103, "Evt1", "NOPE")
