"""The central server: an API for the kiosks and a web UI for the town's IT staff.

Never imports pyudev, pyclamd or Textual; shares only `kiosk.models`, `kiosk.names`,
`kiosk.config` and `kiosk.i18n` with the kiosk.
"""
