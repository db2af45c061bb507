"""The kiosk screen: a Textual client of the station event socket (never imports pyudev/pyclamd)."""
