"""Media codecs and text encoders behind one interface, chosen by name (see `base.py`)."""
