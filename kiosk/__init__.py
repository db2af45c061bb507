"""Station Blanche: an antivirus kiosk for USB sticks and its central log server."""

__version__ = "0.1.0"
