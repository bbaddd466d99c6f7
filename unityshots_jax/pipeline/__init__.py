"""From a story file to media: conditioning arrays, generation through the shot scan, decoding, mp4 output."""
