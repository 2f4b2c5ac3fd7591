"""``parse_body``: what the helper process hands back, picklable whatever the client sent."""

import pickle

import numpy as np

from lifelong.system.api._parse import parse_body


def test_rectangular_numeric_inputs_come_back_as_one_array() -> None:
    kind, doc = parse_body(b'{"inputs": [[1, 2.5], [3, 4]], "model": "champion"}')
    assert kind == "ok" and doc["model"] == "champion"
    assert isinstance(doc["inputs"], np.ndarray) and doc["inputs"].tolist() == [[1.0, 2.5], [3.0, 4.0]]


def test_inputs_that_are_not_a_numeric_table_are_left_for_the_route_to_explain() -> None:
    for body in (b'{"inputs": [[1, 2], [3]]}', b'{"inputs": [1, 2]}', b'{"inputs": [["a", "b"]]}',
                 b'{"inputs": [{"x0": 1}]}', b"[1, 2]"):  # fmt: skip
        kind, doc = parse_body(body)
        assert kind == "ok" and not isinstance(doc, np.ndarray)
        if isinstance(doc, dict):
            assert isinstance(doc["inputs"], list)


def test_bad_json_comes_back_as_message_and_position_which_survive_pickling() -> None:
    kind, value = parse_body(b'{"inputs": [[1, 2]')
    assert kind == "invalid" and value[1] == 18 and "delimiter" in value[0]
    assert pickle.loads(pickle.dumps(value)) == value


def test_the_helper_process_leaves_ctrl_c_to_the_server() -> None:
    """A Ctrl-C reaches the whole process group: the helper printed a KeyboardInterrupt traceback from
    its queue read at every stop of `lifelong serve` or `simulate`; the server stops it itself."""
    import multiprocessing
    import os
    import signal
    from concurrent.futures import ProcessPoolExecutor

    from lifelong.system.api._parse import watch_parent

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=watch_parent, initargs=(os.getpid(),)) as pool:  # fmt: skip
        assert pool.submit(signal.getsignal, signal.SIGINT).result(timeout=60) == signal.SIG_IGN
