"""The catalog: loaded from a file, sales logged slowly — blocking calls made on the loop."""

import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_catalog() -> str:
    with open(os.path.join(HERE, "catalog.txt")) as f:
        return f.read()


def log_sale(item: str) -> str:
    time.sleep(0.001)
    return item
