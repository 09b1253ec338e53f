# The same work as map_words.ms with a Python dict.
n = @N@
text = " ".join("word" + str(i * 2654435761 % 100000) for i in range(n))
counts = {}
for w in text.split(" "):
    counts[w] = counts.get(w, 0) + 1
print(len(counts))
print(counts.get("word42", 0))
