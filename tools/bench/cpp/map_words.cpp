// The same work as map_words.ms with std::string and std::unordered_map.
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

int main() {
    long n = @N@;
    std::string text;
    for (long i = 0; i < n; i++) {
        if (i) text += ' ';
        text += "word" + std::to_string(i * 2654435761L % 100000);
    }
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); i++)
        if (i == text.size() || text[i] == ' ') {
            parts.emplace_back(text, start, i - start);
            start = i + 1;
        }
    std::unordered_map<std::string, long> counts;
    for (const auto &w : parts) counts[w] += 1;
    auto it = counts.find("word42");
    std::printf("%zu\n%ld\n", counts.size(), it == counts.end() ? 0 : it->second);
}
