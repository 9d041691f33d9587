#include "common/drill_config.h"

#include <array>
#include <cctype>
#include <ctime>
#include <set>
#include <string_view>

namespace relay {
namespace {

constexpr std::array<std::string_view, 7> kDays{"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/// "Mon 10:00" (weekly) or "10:00" (daily) into the schedule; false if it is neither.
bool parse_at(std::string_view text, DrillSchedule& drill) {
  drill.weekday = -1;
  if (text.size() > 4 && text[3] == ' ') {
    std::string day(text.substr(0, 3));
    for (auto& c : day) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (std::size_t d = 0; d < kDays.size(); ++d) {
      if (kDays[d] == day) drill.weekday = static_cast<int>(d);
    }
    if (drill.weekday < 0) return false;
    text.remove_prefix(4);
  }
  if (text.size() != 5 || text[2] != ':') return false;
  for (std::size_t i : {0, 1, 3, 4}) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  const int hours = (text[0] - '0') * 10 + (text[1] - '0');
  const int minutes = (text[3] - '0') * 10 + (text[4] - '0');
  if (hours > 23 || minutes > 59) return false;
  drill.minute_of_day = hours * 60 + minutes;
  return true;
}

}  // namespace

std::chrono::milliseconds slot_spacing(const DrillSchedule& drill) {
  if (drill.every.count() > 0) return drill.every;
  return std::chrono::hours(drill.weekday < 0 ? 24 : 24 * 7);
}

std::int64_t last_slot(const DrillSchedule& drill, std::int64_t now_unix_ms) {
  if (drill.every.count() > 0) return now_unix_ms - now_unix_ms % drill.every.count();
  // On the local clock, through mktime: a slot at 10:00 stays at 10:00
  // across a change to or from summer time.
  const std::time_t now = static_cast<std::time_t>(now_unix_ms / 1000);
  std::tm today{};
  localtime_r(&now, &today);
  const int back = drill.weekday < 0 ? 0 : (today.tm_wday - drill.weekday + 7) % 7;
  for (const int days : {back, back + (drill.weekday < 0 ? 1 : 7)}) {
    std::tm slot = today;
    slot.tm_mday -= days;
    slot.tm_hour = drill.minute_of_day / 60;
    slot.tm_min = drill.minute_of_day % 60;
    slot.tm_sec = 0;
    slot.tm_isdst = -1;
    const std::time_t at = std::mktime(&slot);
    if (at <= now) return static_cast<std::int64_t>(at) * 1000;
  }
  return now_unix_ms;  // unreachable: a slot a whole spacing back is never ahead
}

void read_drills(TomlSection& top, Config& config) {
  const toml::array* drills = top.tables("drill");
  if (drills == nullptr) return;
  std::set<std::string> names;
  for (std::size_t i = 0; i < drills->size(); ++i) {
    TomlSection section(*drills->get(i)->as_table(), top.file(),
                        "drill[" + std::to_string(i + 1) + "]", top.issues(),
                        {"name", "every", "at", "targets", "window", "title"});
    DrillSchedule drill;
    drill.name = "drill-" + std::to_string(i + 1);
    if (auto name = section.string("name", false)) {
      if (!valid_node_id(*name)) {
        section.error("name", "\"" + *name + "\" is not 1 to 32 of a-z, 0-9 and -");
      }
      drill.name = *name;
    }
    if (!names.insert(drill.name).second) {
      section.error("name", "\"" + drill.name + "\" names another [[drill]] too: names are unique");
    }
    // Five seconds is a test's; a month the longest a site goes undrilled.
    if (auto every =
            section.duration("every", std::chrono::seconds(5), std::chrono::hours(24 * 31)))
      drill.every = *every;
    if (auto at = section.string("at", false); at && !parse_at(*at, drill)) {
      section.error("at", "\"" + *at +
                              "\": expected \"Mon 10:00\" (weekly) or \"10:00\" (daily), "
                              "on this server's local clock");
    }
    if (section.has("every") == section.has("at")) {
      section.error("every",
                    "expected either every (\"24h\") or at (\"Mon 10:00\"): when drills go");
    }
    if (auto window = section.duration("window", std::chrono::seconds(1), std::chrono::hours(24)))
      drill.window = *window;
    // A drill's window ends before the next drill goes: each is judged alone.
    if (drill.window >= slot_spacing(drill)) {
      section.error("window", "expected less than the time between two drills");
    }
    if (auto title = section.string("title", false)) {
      if (title->empty()) section.error("title", "expected the text people see, or no title key");
      drill.title = *title;
    }
    drill.targets = read_targets(section, "targets", config, "the sites that must acknowledge",
                                 "[\"group:clinics\"]");
    config.drills.push_back(std::move(drill));
  }
}

}  // namespace relay
