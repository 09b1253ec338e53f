// The same work as map_ints.ms with std::unordered_map.
#include <cstdint>
#include <cstdio>
#include <unordered_map>

int main() {
    long n = @N@;
    std::unordered_map<int64_t, int64_t> m;
    for (long i = 0; i < n; i++) m[i * 2654435761L] = i;
    long sum = 0;
    for (long i = 0; i < n; i++) sum += m.at(i * 2654435761L);
    std::printf("%zu\n%ld\n", m.size(), sum);
}
