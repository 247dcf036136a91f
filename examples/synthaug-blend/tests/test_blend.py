from synthaug.testing import check_generator
from synthaug_blend import BlendGenerator


def test_blend_passes_the_conformance_suite() -> None:
    check_generator(BlendGenerator, {"size": 32})
