/* Error codes and version. */
#include "harness.h"

TEST(error_codes_equal_negated_errno)
{
    CHECK_EQ(-ETIMEDOUT, MP_ETIMEDOUT);
    CHECK_EQ(-EINVAL, MP_EINVAL);
    CHECK_EQ(-EOWNERDEAD, MP_EOWNERDEAD);
}

TEST(error_library_codes_are_below_errno_range)
{
    CHECK(MP_ELIBRARY_FIRST < -4095); /* below every kernel errno (MAX_ERRNO) */
    for (int c = MP_ELIBRARY_FIRST; c >= MP_ELIBRARY_LAST; c--) {
        CHECK(strcmp(mp_err_name(c), "MP_E?") != 0);
        CHECK(strcmp(mp_strerror(c), "unknown error") != 0);
    }
}

TEST(error_names_and_descriptions)
{
    CHECK_STR("MP_ETIMEDOUT", mp_err_name(MP_ETIMEDOUT));
    CHECK_STR("MP_EFULL", mp_err_name(MP_EFULL));
    CHECK_STR("MP_OK", mp_err_name(0));
    CHECK_STR("MP_OK", mp_err_name(5));
    CHECK_STR("MP_E?", mp_err_name(-999999));
    CHECK_STR("success", mp_strerror(0));
    CHECK_STR("queue is full", mp_strerror(MP_EFULL));
    CHECK_STR(strerror(ETIMEDOUT), mp_strerror(MP_ETIMEDOUT));
    CHECK_STR("unknown error", mp_strerror(-999999));
}

TEST(version_matches_headers)
{
    CHECK_STR(MP_VERSION_STRING, mp_version());
    CHECK_EQ(MP_VERSION_HEX, mp_version_hex());
}
