"""The floor: the same loop shape with a do-nothing context manager."""

from _workload import main


class Noop:
    # Takes the name like a real span would, so the floor includes one object
    # allocation + __enter__/__exit__ per span, nothing else.
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def setup(sink_url):
    def transaction(txn_name, span_names):
        with Noop(txn_name):
            for name in span_names:
                with Noop(name):
                    pass

    return transaction, lambda: None


if __name__ == "__main__":
    main("bare", setup)
