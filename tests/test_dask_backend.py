"""skface.parallel.dask_backend given something that is not a Dask client."""

import pytest

from skface import parallel


@pytest.mark.parametrize("client", ["x", "tcp://127.0.0.1:8786", None])
def test_dask_backend_not_a_client_raises_type_error_saying_what_to_pass(client):
    # dask_backend("x") raised AttributeError: 'str' object has no attribute ...
    pytest.importorskip("distributed")
    with pytest.raises(TypeError, match=r"dask_backend needs a distributed\.Client, got "
                                        r".*pass Client\(LocalCluster"):
        with parallel.dask_backend(client):
            pass
