"""Count the tensor storages a pickle restores outside skorch's device-safe path."""

import io
import pickle


def raw_storages(obj):
    """How many tensor storages unpickling ``pickle.dumps(obj)`` rebuilds by itself.

    A tensor pickled as a plain attribute is rebuilt through
    ``torch.storage._load_from_bytes``, a ``torch.load`` without
    ``map_location``: a CUDA tensor then cannot load on a CPU-only machine.
    skorch's nets instead save their modules with ``torch.save`` into one
    bytes blob that their ``__setstate__`` maps to an available device;
    those storages never pass through this unpickler, so they are not
    counted.
    """
    import torch.storage

    real = torch.storage._load_from_bytes
    count = 0

    def counting(data):
        nonlocal count
        count += 1
        return real(data)

    class _Counting(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch.storage", "_load_from_bytes"):
                return counting
            return super().find_class(module, name)

    _Counting(io.BytesIO(pickle.dumps(obj))).load()
    return count
