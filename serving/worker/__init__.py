"""The replica process (child side): loads one model, answers frames; imports nothing router-only."""
