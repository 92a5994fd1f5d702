"""Dates as shoppers write them: 昨天, 上周五, 三天前, 11月3号, 双十一那天, 上个月初.

Two pure functions and the Rasa component that uses the first:

- :func:`find_dates` marks date expressions in a normalised message (half-width digits; Chinese
  numerals of dates stay as typed: 十一月三号). The entity's value is the expression as written,
  which is what the actions read (「昨天收到的」 is a sign-for day one day ago).
- :func:`resolve_date` turns an expression into the calendar days it means, against a reference
  date given explicitly (the shop's today where the caller knows it): a day, or a range for 上周,
  上个月, 月初. Expressions that name no year or week (周五, 3号, 11月3号, 双十一) mean the latest such
  day on or before the reference by default, since shoppers mostly ask about orders already placed;
  ``prefer_past=False`` picks the next one on or after it instead.

The parse of a message depends on its text alone (the parse cache relies on it), so the component
adds no resolved dates to the entity: callers resolve the value with their own today.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable, Dict, List, Optional, Tuple

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

from bot.nlu.entity_spans import Mention, MentionExtractor
from bot.nlu.numerals import NUMBER, parse_number

ENTITY = "date"

_DAY_NUMBER = r"(?:[0-9]{1,2}|[一二三四五六七八九十]{1,3})"
_PART_OF_DAY = r"(?:早上|早晨|上午|中午|下午|傍晚|晚上|夜里|半夜|凌晨)"
_RELATIVE_DAYS = {
    "大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "昨儿": -1, "昨晚": -1, "昨夜": -1,
    "今天": 0, "今日": 0, "今儿": 0, "今晚": 0, "今早": 0,
    "明天": 1, "明日": 1, "明儿": 1, "明早": 1, "明晚": 1, "后天": 2, "大后天": 3,
}
_RELATIVE_DAY = "|".join(sorted(_RELATIVE_DAYS, key=len, reverse=True))
_WEEK_OFFSETS = {"上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, "下下": 2}
_WEEKDAYS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 7, "天": 7,
             "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7}
_WEEK_PREFIX = r"(?:上上|上|这|本|下下|下)"
_WEEK_WORD = r"(?:周|星期|礼拜)"
_WEEKDAY = r"(?:[一二三四五六日天1-7](?![0-9])|末)"
_MONTH_PARTS = {"初": (1, 10), "上旬": (1, 10), "中": (11, 20), "中旬": (11, 20), "下旬": (21, 31), "底": (21, 31), "末": (21, 31)}
_MONTH_PART = r"(?:初|上旬|中旬|下旬|底|末)"
_YEAR_OFFSETS = {"今年": 0, "去年": -1, "前年": -2, "明年": 1}
_YEAR = r"(?:[0-9]{4}年|今年|去年|前年|明年)"
_FESTIVALS: Dict[str, Tuple[Tuple[int, int], Tuple[int, int]]] = {
    "双十一": ((11, 11), (11, 11)), "双11": ((11, 11), (11, 11)), "双十二": ((12, 12), (12, 12)),
    "双12": ((12, 12), (12, 12)), "618": ((6, 18), (6, 18)), "元旦": ((1, 1), (1, 1)),
    "情人节": ((2, 14), (2, 14)), "国庆节": ((10, 1), (10, 7)), "国庆": ((10, 1), (10, 7)),
    "圣诞节": ((12, 25), (12, 25)), "圣诞": ((12, 25), (12, 25)),
}
_FESTIVAL = "|".join(re.escape(name) for name in sorted(_FESTIVALS, key=len, reverse=True)).replace("618", r"(?<![0-9])618(?![0-9.元块])")
_UNITS_AGO = r"(?:个?月|个?星期|个?礼拜|周|天|日|年)"

# Alternatives in the order they are tried at a position: the more specific first.
_EXPRESSIONS = (
    rf"{_YEAR}?(?<![0-9]){_DAY_NUMBER}月(?![饼卡租薪])(?:份)?(?:{_DAY_NUMBER}[日号](?![0-9])|{_MONTH_PART})?",
    rf"(?:{NUMBER}|半)(?:{_UNITS_AGO})(?:之前|以前|前|之后|以后|后)",
    r"前(?:两|几|些)天",
    rf"{_YEAR}?(?:{_FESTIVAL})",
    rf"{_WEEK_PREFIX}个?{_WEEK_WORD}{_WEEKDAY}?|{_WEEK_WORD}{_WEEKDAY}",
    rf"(?:上上|上|这|本|下)个?月(?![饼卡租薪]){_MONTH_PART}?|月(?:初|底|末)",
    rf"(?<![售之以然最])(?:{_RELATIVE_DAY})(?!见)",
    # not a size (大一号), a house number (中山路8号) or a line (3号线)
    rf"(?<![0-9A-Za-z第.大小加路街道巷弄村区栋室楼层]){_DAY_NUMBER}[号日](?![0-9线楼店口门库仓机位内达]|无理由|之内|以内)",
)
_DATE = re.compile(rf"(?:{'|'.join(_EXPRESSIONS)})(?:那天|当天)?{_PART_OF_DAY}?")


@dataclass(frozen=True)
class DateRange:
    """Calendar days from ``start`` to ``end``, both included (one day when they are equal)."""

    start: date
    end: date

    @property
    def is_day(self) -> bool:
        """True when the range is a single day."""
        return self.start == self.end


def find_dates(text: str) -> List[Mention]:
    """The date expressions in a normalised message, in order.

    Args:
        text: the message after :func:`bot.nlu.normalize.normalize`.

    Returns:
        (start, end, text) of each expression, e.g. 「上周五」 in 「上周五下单的床垫」, 「双十一那天」,
        「昨天晚上」. A day of the month that cannot exist (「32号」) is not a date.
    """
    found = []
    for match in _DATE.finditer(text):
        expression = match.group(0)
        if _has_impossible_day(expression):
            continue
        found.append(Mention(match.start(), match.end(), expression))
    return found


def _has_impossible_day(expression: str) -> bool:
    numbers = re.findall(rf"({_DAY_NUMBER})([月日号])", expression)
    for number, unit in numbers:
        value = parse_number(number)
        if value is None or value < 1 or value > (12 if unit == "月" else 31):
            return True
    return False


# ------------------------------------------------------------------------------ resolution
def _add_months(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _month_range(year: int, month: int, part: Optional[str] = None) -> DateRange:
    last = calendar.monthrange(year, month)[1]
    first_day, last_day = _MONTH_PARTS.get(part or "", (1, last))
    return DateRange(date(year, month, first_day), date(year, month, min(last_day, last)))


def _pick_year(make: Callable[[int], Optional[DateRange]], reference: date, prefer_past: bool) -> Optional[DateRange]:
    """The range ``make(year)`` for the reference's year, or the year before/after it."""
    this_year = make(reference.year)
    if this_year is None:
        return None
    if prefer_past and this_year.start > reference:
        return make(reference.year - 1)
    if not prefer_past and this_year.end < reference:
        return make(reference.year + 1)
    return this_year


def _safe(make: Callable[[], DateRange]) -> Optional[DateRange]:
    try:
        return make()
    except ValueError:
        return None


def _resolve_absolute(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    year_text, month_text, day_text, part = match.group("year"), match.group("month"), match.group("day"), match.group("part")
    month = parse_number(month_text)
    day = parse_number(day_text) if day_text else None
    if month is None or (day_text and day is None):
        return None

    def make(year: int) -> Optional[DateRange]:
        if day is not None:
            return _safe(lambda: DateRange(date(year, month, day), date(year, month, day)))
        return _safe(lambda: _month_range(year, month, part))

    if year_text:
        year = int(year_text[:-1]) if year_text[0].isdigit() else reference.year + _YEAR_OFFSETS[year_text]
        return make(year)
    return _pick_year(make, reference, prefer_past)


def _resolve_ago(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    amount_text, unit, direction = match.group("amount"), match.group("unit").lstrip("个"), match.group("direction")
    sign = -1 if "前" in direction else 1
    if amount_text == "半":
        shifted = reference + timedelta(days=sign * 15) if unit == "月" else (_add_months(reference, sign * 6) if unit == "年" else None)
        return DateRange(shifted, shifted) if shifted else None
    amount = parse_number(amount_text)
    if amount is None:
        return None
    if unit in ("天", "日"):
        shifted = reference + timedelta(days=sign * amount)
    elif unit in ("周", "星期", "礼拜"):
        shifted = reference + timedelta(weeks=sign * amount)
    elif unit == "月":
        shifted = _add_months(reference, sign * amount)
    else:
        shifted = _add_months(reference, sign * 12 * amount)
    return DateRange(shifted, shifted)


def _resolve_recent_days(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    days = {"两": 2, "几": 3, "些": 3}[match.group("few")]
    return DateRange(reference - timedelta(days=days), reference - timedelta(days=1))


def _resolve_festival(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    (first_month, first_day), (last_month, last_day) = _FESTIVALS[match.group("festival")]

    def make(year: int) -> DateRange:
        return DateRange(date(year, first_month, first_day), date(year, last_month, last_day))

    year_text = match.group("year")
    if year_text:
        return make(int(year_text[:-1]) if year_text[0].isdigit() else reference.year + _YEAR_OFFSETS[year_text])
    return _pick_year(make, reference, prefer_past)


def _resolve_week(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    prefix, weekday = match.group("prefix"), match.group("weekday")
    monday = reference - timedelta(days=reference.weekday()) + timedelta(weeks=_WEEK_OFFSETS.get(prefix or "", 0))
    if weekday is None:
        return DateRange(monday, monday + timedelta(days=6))
    first, last = (6, 7) if weekday == "末" else (_WEEKDAYS[weekday], _WEEKDAYS[weekday])
    chosen = DateRange(monday + timedelta(days=first - 1), monday + timedelta(days=last - 1))
    if prefix is None:
        if prefer_past and chosen.start > reference:
            return DateRange(chosen.start - timedelta(weeks=1), chosen.end - timedelta(weeks=1))
        if not prefer_past and chosen.end < reference:
            return DateRange(chosen.start + timedelta(weeks=1), chosen.end + timedelta(weeks=1))
    return chosen


def _resolve_month(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    offset = _WEEK_OFFSETS.get(match.group("prefix") or "", 0)
    month = _add_months(reference.replace(day=1), offset)
    return _month_range(month.year, month.month, match.group("part"))


def _resolve_relative_day(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    day = reference + timedelta(days=_RELATIVE_DAYS[match.group("word")])
    return DateRange(day, day)


def _resolve_day_of_month(match: re.Match[str], reference: date, prefer_past: bool) -> Optional[DateRange]:
    day = parse_number(match.group("day"))
    if day is None or not 1 <= day <= 31:
        return None
    step = -1 if prefer_past else 1
    month = reference.replace(day=1)
    for _ in range(13):
        if day <= calendar.monthrange(month.year, month.month)[1]:
            candidate = month.replace(day=day)
            if (candidate <= reference) if prefer_past else (candidate >= reference):
                return DateRange(candidate, candidate)
        month = _add_months(month, step)
    return None


_Resolver = Callable[[re.Match[str], date, bool], Optional[DateRange]]
_RESOLVERS: Tuple[Tuple[re.Pattern[str], _Resolver], ...] = (
    (re.compile(rf"(?P<year>{_YEAR})?(?P<month>{_DAY_NUMBER})月份?(?:(?P<day>{_DAY_NUMBER})[日号]|(?P<part>{_MONTH_PART}))?"),
     _resolve_absolute),
    (re.compile(rf"(?P<amount>{NUMBER}|半)(?P<unit>{_UNITS_AGO})(?P<direction>之前|以前|前|之后|以后|后)"), _resolve_ago),
    (re.compile(r"前(?P<few>两|几|些)天"), _resolve_recent_days),
    (re.compile(rf"(?P<year>{_YEAR})?(?P<festival>{'|'.join(re.escape(name) for name in _FESTIVALS)})"), _resolve_festival),
    (re.compile(rf"(?:(?P<prefix>{_WEEK_PREFIX})个?)?{_WEEK_WORD}(?P<weekday>[一二三四五六日天1-7]|末)?"), _resolve_week),
    (re.compile(rf"(?:(?P<prefix>上上|上|这|本|下)个?)?月(?P<part>{_MONTH_PART})?"), _resolve_month),
    (re.compile(rf"(?P<word>{_RELATIVE_DAY})"), _resolve_relative_day),
    (re.compile(rf"(?P<day>{_DAY_NUMBER})[号日]"), _resolve_day_of_month),
)
_TRAILER = re.compile(rf"(?:那天|当天)?{_PART_OF_DAY}?$")


def resolve_date(expression: str, reference: date, prefer_past: bool = True) -> Optional[DateRange]:
    """The calendar days a date expression means, seen from ``reference``.

    Args:
        expression: a date expression as :func:`find_dates` marks it (「上周五」, 「三天前」,
            「11月3号」, 「双十一那天」, 「这个月初」, 「昨天晚上」); a time of day or 「那天」 after it
            changes nothing.
        reference: the day the shopper wrote on (the shop's today).
        prefer_past: for an expression that names no year, week or month (「周五」, 「3号」,
            「11月3号」, 「双十一」), the latest such day on or before ``reference``; False: the
            first on or after it.

    Returns:
        The day or range (weeks run Monday to Sunday; 月初 is days 1–10, 月中 11–20, 月底 21 to the
        end); None when the expression is not one of these or names no real day (「2月30号」, 「几天前」).
    """
    core = _TRAILER.sub("", expression.strip()) or expression.strip()
    for pattern, resolver in _RESOLVERS:
        match = pattern.fullmatch(core)
        if match:
            return resolver(match, reference, prefer_past)
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class DateExtractor(MentionExtractor):
    """Adds ``date`` entities: the date expressions of a message, valued as written."""

    entity = ENTITY

    def find(self, text: str) -> List[Mention]:
        """The date expressions of a normalised text (see :func:`find_dates`)."""
        return find_dates(text)
