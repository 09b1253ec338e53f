# The same work as map_ints_random.ms with a Python dict.
n = @N@
MASK = (1 << 64) - 1
m = {}
x = 1
for i in range(n):
    x = (x * 6364136223846793005 + 1442695040888963407) & MASK
    m[x] = i
total = 0
x = 1
for i in range(n):
    x = (x * 6364136223846793005 + 1442695040888963407) & MASK
    total += m[x]
print(len(m))
print(total)
