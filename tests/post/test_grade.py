import warnings

import colour
import numpy as np
import pytest
from colour.algebra import table_interpolation_tetrahedral, table_interpolation_trilinear

from brandstudio.errors import AssetError
from brandstudio.post.grade import LUT, Grade, read_lut

PROFILES = __import__("pathlib").Path(__file__).resolve().parents[2] / "brand_profiles"


def _creative_table(size: int = 33) -> np.ndarray:
    t = colour.LUT3D.linear_table(size)
    warm = t**0.85 * np.array([1.06, 0.99, 0.88]) + 0.04 * np.sin(5 * t[..., ::-1])
    return np.clip(warm, 0, 1)


@pytest.fixture
def cube_file(tmp_path):
    lut = colour.LUT3D(_creative_table(33), name="warm")
    path = tmp_path / "warm.cube"
    colour.io.write_LUT(lut, str(path))
    return path


def _reference(px: np.ndarray, table: np.ndarray, interpolator, strength=1.0, domain=None) -> np.ndarray:
    lut = colour.LUT3D(table, domain=domain if domain is not None else np.array([[0, 0, 0], [1, 1, 1]]))
    x = px.astype(np.float64) / 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = lut.apply(x, interpolator=interpolator)
    y = (1 - strength) * x + strength * y
    return np.clip(np.rint(y * 255), 0, 255)


@pytest.mark.parametrize(
    "method, interpolator",
    [("tetrahedral", table_interpolation_tetrahedral), ("trilinear", table_interpolation_trilinear)],
)
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_matches_colour_science_on_random_pixels(cube_file, method, interpolator, strength):
    lut = read_lut(cube_file)
    assert lut.dimensions == 3 and lut.size == 33
    px = np.random.default_rng(1).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    ours = Grade(lut, strength=strength, method=method).apply(px).astype(float)
    ref = _reference(px.reshape(-1, 3), _creative_table(33), interpolator, strength).reshape(px.shape)
    assert np.abs(ours - ref).max() <= 1


def test_baked_path_agrees_with_direct_kernel(cube_file):
    grade = Grade(read_lut(cube_file), strength=0.8)
    px = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    direct = grade.apply(px)
    grade.baked()  # force the 256^3 table; later applies use it
    assert np.array_equal(grade.apply(px), direct)


def test_domain_is_honoured(tmp_path):
    domain = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])
    table = colour.LUT3D.linear_table(17, domain=domain) ** 0.5 / np.sqrt(2)
    lut3 = colour.LUT3D(table, domain=domain)
    colour.io.write_LUT(lut3, str(tmp_path / "d.cube"))
    lut = read_lut(tmp_path / "d.cube")
    assert np.allclose(lut.domain, domain)
    px = np.random.default_rng(3).integers(0, 256, (1, 10, 10, 3), dtype=np.uint8)
    ref = _reference(px.reshape(-1, 3), table, table_interpolation_tetrahedral, domain=domain)
    assert np.abs(Grade(lut).apply(px).reshape(-1, 3).astype(float) - ref).max() <= 1


def test_1d_lut_applies_per_channel(tmp_path):
    x = np.linspace(0, 1, 64)
    table = np.stack([x**2, x, np.sqrt(x)], axis=-1)
    colour.io.write_LUT(colour.LUT3x1D(table), str(tmp_path / "curve.cube"))
    lut = read_lut(tmp_path / "curve.cube")
    assert lut.dimensions == 1
    out = Grade(lut).apply(np.full((1, 2, 2, 3), 128, np.uint8))[0, 0, 0]
    v = 128 / 255
    assert np.abs(out.astype(float) - np.array([v**2, v, np.sqrt(v)]) * 255).max() <= 1


def test_identity_and_zero_strength_change_nothing(cube_file):
    px = np.random.default_rng(4).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(Grade(LUT.identity(17)).apply(px), px)
    assert np.array_equal(Grade(read_lut(cube_file), strength=0.0).apply(px), px)


def test_profile_luts_load():
    cubes = sorted(PROFILES.glob("*/luts/*.cube"))
    assert cubes, "the demo profiles ship their LUTs under brand_profiles/*/luts"
    for path in cubes:
        lut = read_lut(path)
        assert lut.dimensions == 3
        out = Grade(lut, strength=0.85).apply(np.full((1, 2, 2, 3), 128, np.uint8))
        assert out.dtype == np.uint8


@pytest.mark.parametrize(
    "content",
    [
        "LUT_3D_SIZE 2\n0 0 0\n1 0 0\n",  # too few rows
        "this is not a LUT\n",
        "LUT_3D_SIZE 2\n" + "nan 0 0\n" * 8,  # non-finite
    ],
)
def test_corrupt_lut_raises_asset_error(tmp_path, content):
    path = tmp_path / "bad.cube"
    path.write_text(content)
    with pytest.raises(AssetError) as err:
        read_lut(path)
    assert err.value.file == str(path)


def test_missing_lut_raises_asset_error(tmp_path):
    with pytest.raises(AssetError, match="not found"):
        read_lut(tmp_path / "nope.cube")


def test_bad_arguments():
    with pytest.raises(ValueError, match="strength"):
        Grade(LUT.identity(3), strength=1.5)
    with pytest.raises(ValueError, match="tetrahedral"):
        Grade(LUT.identity(3), method="cubic")
