"""What every sandbox emulator shares: web serving and answers (``web.py``), and the
faults an emulator can be told to inject with the gate that applies them (``faults.py``)."""
