"""The central server: reports API and web pages for IT (never imports pyudev/pyclamd/Textual)."""
