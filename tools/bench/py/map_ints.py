# The same work as map_ints.ms with a Python dict.
n = @N@
m = {}
for i in range(n):
    m[i * 2654435761] = i
total = 0
for i in range(n):
    total += m[i * 2654435761]
print(len(m))
print(total)
