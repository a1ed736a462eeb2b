"""The sign-in limiter's counting and back-off, on a clock the test turns."""

from __future__ import annotations

from api.sign_in_limits import SignInLimiter, SignInPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(limiter: SignInLimiter, user: str, address: str, times: int) -> None:
    for _ in range(times):
        assert limiter.begin(user, address) is None
        limiter.finish(user, address, succeeded=False)


def test_after_the_allowed_failures_a_user_waits_even_with_the_right_password() -> None:
    clock = Clock()
    limiter = SignInLimiter(SignInPolicy(user_failures=5, backoff_s=30), clock=clock)
    _fail(limiter, "ana", "10.0.0.1", 5)
    assert limiter.begin("ana", "10.0.0.1") == 30
    clock.now += 29
    assert limiter.begin("ana", "10.0.0.1") == 1
    clock.now += 1.5
    assert limiter.begin("ana", "10.0.0.1") is None
    limiter.finish("ana", "10.0.0.1", succeeded=True)
    assert limiter.begin("ana", "10.0.0.1") is None


def test_each_failure_after_the_allowance_doubles_the_wait_up_to_the_maximum() -> None:
    clock = Clock()
    policy = SignInPolicy(user_failures=2, backoff_s=10, backoff_max_s=35)
    limiter = SignInLimiter(policy, clock=clock)
    waits = []
    for _ in range(5):
        while (wait := limiter.begin("bo", "a")) is not None:
            clock.now += wait
        limiter.finish("bo", "a", succeeded=False)
        probe = limiter.begin("bo", "a")
        waits.append(probe)
        if probe is None:
            limiter.finish("bo", "a", succeeded=None)
    assert waits == [None, 10, 20, 35, 35]


def test_an_address_guessing_many_usernames_is_limited() -> None:
    limiter = SignInLimiter(SignInPolicy(user_failures=5, address_failures=20), clock=Clock())
    for n in range(20):
        _fail(limiter, f"user-{n}", "203.0.113.9", 1)
    assert limiter.begin("someone-else", "203.0.113.9") is not None
    assert limiter.begin("someone-else", "198.51.100.1") is None


def test_concurrent_attempts_count_before_their_passwords_are_checked() -> None:
    policy = SignInPolicy(user_failures=3, user_total_failures=3)
    limiter = SignInLimiter(policy, clock=Clock())
    assert [limiter.begin("cy", f"10.0.0.{n}") for n in range(5)] == [None, None, None, 1, 1]
    assert [limiter.begin("dee", "10.0.0.9") for _ in range(5)] == [None, None, None, 1, 1]


def test_a_user_locked_out_at_one_address_still_signs_in_from_another() -> None:
    clock = Clock()
    limiter = SignInLimiter(SignInPolicy(user_failures=5, backoff_s=30), clock=clock)
    for _ in range(20):  # a guesser keeps failing at one address, once per back-off
        while (wait := limiter.begin("eve", "203.0.113.9")) is not None:
            clock.now += wait
        limiter.finish("eve", "203.0.113.9", succeeded=False)
    assert limiter.begin("eve", "203.0.113.9") is not None
    assert limiter.begin("eve", "10.0.0.7") is None  # the crew member, right password
    limiter.finish("eve", "10.0.0.7", succeeded=True)
    assert limiter.begin("eve", "203.0.113.9") is not None  # the guesser still waits


def test_a_guesser_spread_over_many_addresses_is_stopped_at_the_username_limit() -> None:
    clock = Clock()
    policy = SignInPolicy(user_failures=5, address_failures=20, user_total_failures=50)
    limiter = SignInLimiter(policy, clock=clock)
    checked = []
    for n in range(200):  # five guesses from each of 200 addresses, all at once
        address = f"198.51.100.{n}"
        checked += [address for _ in range(5) if limiter.begin("fay", address) is None]
    assert len(checked) == 50
    for address in checked:
        limiter.finish("fay", address, succeeded=False)
    assert limiter.begin("fay", "192.0.2.1") == 30  # a new address waits too
    clock.now += 30.5
    assert limiter.begin("fay", "192.0.2.1") is None
    limiter.finish("fay", "192.0.2.1", succeeded=False)
    assert limiter.begin("fay", "192.0.2.2") == 60  # each further failure doubles the wait


def test_an_attempt_that_could_not_be_checked_counts_neither_way() -> None:
    limiter = SignInLimiter(SignInPolicy(user_failures=1), clock=Clock())
    assert limiter.begin("di", "a") is None
    limiter.finish("di", "a", succeeded=None)
    assert limiter.begin("di", "a") is None
