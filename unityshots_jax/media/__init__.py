"""Media I/O for `unityshots generate`: the story MP4 (H.264 + AAC, shot chapters, a JSON sidecar), reading it back,
loading the images and voices a story file names, and a contact sheet of the shots."""
