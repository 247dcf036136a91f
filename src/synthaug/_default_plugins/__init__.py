"""Generators that ship with synthaug, registered through the same hook as third-party plugins."""
