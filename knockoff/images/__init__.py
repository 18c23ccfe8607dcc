"""Photos as bytes and pixels: the first thing every stage does with a photo.

Takes a location (a file, a URL, an object-store URI) and gives its bytes, then RGB pixels
squashed to the model's input size with the decode ceilings that keep a bomb to one row
(decode.py); tells whether two photos are copies of one photograph (copies.py). Imports no
other Knockoff stage.
"""
