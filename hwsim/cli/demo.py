"""``hwsim demo``: the main job, offline, on a model and data shipped with the package."""
from __future__ import annotations

import sys

DESCRIPTION = """\
Everything hwsim does, on data that ships with it: the digits CNN (trained on
scikit-learn's 8x8 digits, CC BY 4.0), its calibration and labelled test digits, and the
shipped hardware profiles. It runs the mixed-precision search on each profile with an
accuracy budget (top-1 drop of at most --max-drop points against float), compares them and
writes a self-contained HTML report; it prints where the report is.
"""

DEFAULT_PROFILES = ("cpu_onnxruntime", "mobile_npu", "dsp_hexagon_like", "edge_tpu_like")


def add_arguments(p):
    p.add_argument("--out", default="hwsim-demo", metavar="DIR", help="output folder (default: ./hwsim-demo)")
    p.add_argument("--profiles", nargs="+", default=list(DEFAULT_PROFILES), metavar="P",
                   help=f"profiles to compare (default: {' '.join(DEFAULT_PROFILES)})")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="X",
                   help="budget: top-1 accuracy points the quantized model may lose vs float (default: 1.0)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--export", metavar="DIR",
                   help="only write the shipped model and data to DIR as files to try the other commands on "
                        "(digits_cnn.onnx, calib.npy, test_x.npy, test_y.npy, and digits_cnn_qdq.onnx: the model "
                        "quantized by onnxruntime's own quantize_static, for `hwsim validate`), then exit")


def export_demo_files(out_dir) -> dict:
    """Write the shipped model and data as plain files; returns name -> path."""
    import io
    from pathlib import Path

    import numpy as np

    from hwsim.demo_data import demo_model_bytes, load_demo_data
    from hwsim.io import atomic_write_bytes

    out = Path(out_dir)
    calib, test_x, test_y = load_demo_data()
    files = {"digits_cnn.onnx": atomic_write_bytes(out / "digits_cnn.onnx", demo_model_bytes())}
    for name, arr in (("calib.npy", calib), ("test_x.npy", test_x), ("test_y.npy", test_y)):
        buf = io.BytesIO()
        np.save(buf, arr)
        files[name] = atomic_write_bytes(out / name, buf.getvalue())
    import logging

    from hwsim.demo_data import demo_qdq_model

    logging.disable(logging.WARNING)     # quantize_static advises pre-processing on the root logger
    try:
        qdq = demo_qdq_model(activation="uint8", weight="int8", fmt="qdq")
    finally:
        logging.disable(logging.NOTSET)
    files["digits_cnn_qdq.onnx"] = atomic_write_bytes(out / "digits_cnn_qdq.onnx", qdq)
    return files


def run(args) -> int:
    from pathlib import Path

    from hwsim.cli.compare import print_summary
    from hwsim.compare import compare
    from hwsim.demo_data import demo_model_path, load_demo_data
    from hwsim.report.compare_report import write_compare

    if args.export:
        files = export_demo_files(args.export)
        for name, path in files.items():
            print(path)
        return 0
    calib, test_x, test_y = load_demo_data()
    model = demo_model_path()
    print(f"hwsim demo: {Path(model).name}, {len(calib)} calibration and {len(test_x)} labelled test digits, "
          f"profiles {', '.join(args.profiles)}; budget: top-1 drop <= {args.max_drop:g} points")
    result = compare(str(model), args.profiles, calib, max_drop=args.max_drop, labels=test_y, eval_data=test_x,
                     out_dir=args.out, jobs=args.jobs, progress=not args.no_progress and sys.stderr.isatty())
    files = write_compare(result, args.out)
    print_summary(result, files)
    print(f"\nOpen {Path(files['report.html']).resolve()} in a browser.")
    return 0
