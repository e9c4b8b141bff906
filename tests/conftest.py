import os

import pytest
import torch
from hypothesis import settings

from orthoconv.nn import _precision

settings.register_profile("default", deadline=None, max_examples=25, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=300)  # random seeds: a search for counterexamples
settings.load_profile(os.environ.get("ORTHOCONV_HYPOTHESIS", "default"))


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """Every device test runs on the CPU and, where a GPU exists, on CUDA (skipped otherwise; a failure
    where ORTHOCONV_REQUIRE_CUDA is set, as .ci/device does). A GPU test that does not take this fixture
    carries ``@pytest.mark.cuda`` itself, so that ``pytest -m cuda`` selects every one."""
    if request.param == "cuda" and not torch.cuda.is_available():
        if os.environ.get("ORTHOCONV_REQUIRE_CUDA"):
            pytest.fail("ORTHOCONV_REQUIRE_CUDA is set but CUDA is not available")
        pytest.skip("CUDA is not available on this machine")
    return request.param


@pytest.fixture(autouse=True)
def no_failed_checks_left():
    """Each test starts without kernel-check failures recorded by an earlier one (orthoconv.nn._precision)."""
    _precision._passed.clear()
    yield
    _precision._passed.clear()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The test problems are tiny: intra-op threads only add synchronization (on a loaded 2-core
    machine a 4 us conv2d took 35 ms with 2 threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True, scope="session")
def empty_data_folder(tmp_path_factory):
    """orthoconv's data folder is an empty temporary one: a test never reads (or writes) the user's copy of a
    data set, so that its outcome does not depend on what 'orthoconv data get' put there. The tests of the
    real copy read it from the path they recorded at import."""
    previous = os.environ.get("ORTHOCONV_DATA")
    os.environ["ORTHOCONV_DATA"] = str(tmp_path_factory.mktemp("orthoconv-data"))
    yield
    if previous is None:
        os.environ.pop("ORTHOCONV_DATA", None)
    else:
        os.environ["ORTHOCONV_DATA"] = previous
