"""The bench reference loop (bench/reference.py) is sound, so its ratio means something."""

from __future__ import annotations

from reference import dict_table, reference_loop  # bench/ is on pytest's pythonpath

from model.graph import build_graph
from model.loader import load_procedure


def test_the_dict_table_holds_every_move_of_the_configuration_graph():
    procedure = load_procedure("west-midlands-2014")
    moves, start, ends = dict_table(procedure)
    graph = build_graph(procedure)
    assert sum(len(m) for m in moves.values()) == graph.graph.number_of_edges()
    assert len(moves) == graph.graph.number_of_nodes()
    assert start in moves and ends and ends <= set(moves)


def test_the_reference_loop_fires_at_least_the_transitions_asked_for():
    seconds, fired = reference_loop(load_procedure("west-midlands-2014"), 5000)
    assert 5000 <= fired < 5000 + 1000
    assert seconds > 0
