"""Worker process of :mod:`hwsim.parallel`: one pickled task on stdin, one pickled result on stdout."""
import importlib
import pickle
import sys
import traceback


def main() -> int:
    module, function, args, kwargs = pickle.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    sys.stdout = sys.stderr          # stray prints must not corrupt the pickled answer
    try:
        fn = getattr(importlib.import_module(module), function)
        answer = ("ok", fn(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 - everything is reported to the parent
        from hwsim.errors import HwsimError

        answer = ("error", e) if isinstance(e, HwsimError) else ("crash", traceback.format_exc())
    try:
        data = pickle.dumps(answer)
    except Exception:  # an unpicklable result or exception
        data = pickle.dumps(("crash", traceback.format_exc()))
    out.write(data)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
