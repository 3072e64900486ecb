"""The control panel driven in Debian's Chromium, against the real `hookline serve`."""
