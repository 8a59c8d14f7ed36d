"""Reference text-to-speech server for tts-ha (Piper neural voice + espeak-ng)."""

__version__ = "1.0.0"
