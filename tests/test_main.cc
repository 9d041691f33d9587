// The test programs' main: doctest's, and one check of its own.
//
// ctest runs each TEST_CASE by name (doctest_discover_tests, tests/
// CMakeLists.txt). A name filter that matches nothing passes silently, and
// CMake splits a name at every ';' into filters that match nothing: such a
// test case never ran, and its ctest test could not fail. A filtered run in
// which no test case started fails here instead.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

namespace {

int started = 0;

struct StartCounter : doctest::IReporter {
  explicit StartCounter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++started; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("start-counter", 1, StartCounter);

bool filtered(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--test-case=") || arg.starts_with("-tc=")) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (context.shouldExit() || result != 0) return result;
  if (filtered(argc, argv) && started == 0) {
    std::fprintf(stderr,
                 "no test case matches the --test-case filter: a name with a ';' is split by "
                 "CMake; use another separator\n");
    return 1;
  }
  return result;
}
