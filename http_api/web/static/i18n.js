// Interface text in Russian and English. Server content (questions, feedback) keeps the
// interview's own language; only the page's chrome follows this toggle.

const STORAGE_KEY = "ip.uiLang";
export const LANGUAGES = ["ru", "en"];

const ru = {
  "app.name": "Тренажёр собеседований",
  "app.skip": "Перейти к содержимому",
  "nav.label": "Основное меню",
  "nav.start": "Новое собеседование",
  "nav.history": "История",
  "nav.login": "Войти",
  "nav.register": "Регистрация",
  "nav.logout": "Выйти",
  "lang.toggle": "English",
  "lang.toggleLabel": "Switch the interface to English",
  "lang.ru": "Русский",
  "lang.en": "English",
  "common.loading": "Загрузка…",
  "common.required": "Заполните это поле.",
  "common.optional": "необязательно",

  "login.title": "Вход",
  "login.email": "Электронная почта",
  "login.password": "Пароль",
  "login.submit": "Войти",
  "login.noAccount": "Нет аккаунта?",
  "login.register": "Зарегистрироваться",
  "login.forgot": "Забыли пароль?",
  "login.sessionEnded": "Сеанс завершён. Войдите снова.",

  "register.title": "Регистрация",
  "register.password": "Пароль",
  "register.passwordHint": "Не короче 8 символов.",
  "register.gender": "Пол",
  "gender.unspecified": "Не указывать",
  "gender.female": "Женский",
  "gender.male": "Мужской",
  "gender.other": "Другой",
  "register.age": "Возраст",
  "register.ageHint": "От 14 до 100 лет.",
  "register.language": "Язык собеседований и писем",
  "register.marketing": "Присылать новости и советы по подготовке",
  "register.submit": "Создать аккаунт",
  "register.haveAccount": "Уже есть аккаунт?",
  "register.doneTitle": "Проверьте почту",
  "register.doneText": "Мы отправили ссылку для подтверждения на {email}. Откройте её, чтобы начать.",

  "verify.title": "Подтверждение почты",
  "verify.working": "Подтверждаем адрес…",
  "verify.ok": "Адрес подтверждён. Можно начинать собеседование.",
  "verify.missing": "В ссылке нет кода подтверждения. Откройте ссылку из письма целиком.",
  "verify.toLogin": "Войти",
  "verify.toStart": "К собеседованию",

  "forgot.title": "Восстановление пароля",
  "forgot.text": "Укажите адрес, с которым вы регистрировались, и мы пришлём ссылку для смены пароля.",
  "forgot.submit": "Прислать ссылку",
  "forgot.done": "Если с этим адресом есть аккаунт, ссылка уже в пути.",

  "reset.title": "Новый пароль",
  "reset.password": "Новый пароль",
  "reset.confirm": "Повторите новый пароль",
  "reset.mismatch": "Пароли не совпадают.",
  "reset.submit": "Сменить пароль",
  "reset.done": "Пароль изменён. Войдите с новым паролем.",

  "start.title": "Новое собеседование",
  "start.level": "Уровень",
  "level.intern": "Стажёр",
  "level.junior": "Junior",
  "level.middle": "Middle",
  "levelDesc.intern": "Основы: типы данных, простые алгоритмы, сети и базы данных.",
  "levelDesc.junior": "Повседневная разработка: Python, базы данных, конкурентность, тесты.",
  "levelDesc.middle": "Глубина и проектирование систем.",
  "start.language": "Язык собеседования",
  "start.info": "{count} вопросов, {minutes} мин на вопрос, проходной балл {pass}.",
  "start.submit": "Начать собеседование",
  "start.unfinished": "У вас есть незаконченное собеседование ({level}).",
  "start.continue": "Продолжить",

  "interview.title": "Собеседование",
  "interview.progress": "Вопрос {n} из {total}",
  "interview.questions": "Вопросы",
  "interview.timeLeft": "Осталось времени",
  "interview.timeUp": "Время вышло: отправляем ваш черновик.",
  "interview.minuteLeft": "Осталась одна минута.",
  "interview.answerLabel": "Ваш ответ",
  "interview.answerHint": "Ctrl+Enter отправляет ответ. Черновик сохраняется каждые несколько секунд.",
  "interview.emptyAnswer": "Напишите ответ, прежде чем отправлять.",
  "interview.send": "Отправить ответ",
  "interview.sending": "Отправляем ответ…",
  "interview.queued": "Нет связи: ответ уйдёт, как только соединение восстановится.",
  "interview.evaluating": "Оцениваем ответ…",
  "interview.yourAnswer": "Ваш ответ",
  "interview.noAnswer": "(без ответа)",
  "interview.auto": "Отправлено автоматически по истечении времени.",
  "interview.feedback": "Отзыв",
  "interview.score": "Оценка: {score} из 10",
  "interview.finish": "Завершить собеседование",
  "interview.finishConfirm": "Завершить сейчас? Вопросы без ответа получат 0 баллов.",
  "interview.finishYes": "Да, завершить",
  "interview.finishNo": "Продолжить",
  "interview.finishing": "Завершаем…",
  "interview.newQuestion": "Вопрос {n} из {total}.",
  "interview.completed": "Собеседование завершено.",
  "interview.result": "Итог: {score} из 100.",
  "interview.abandoned": "Собеседование закрыто из-за долгого бездействия.",
  "interview.viewReport": "Открыть отчёт",
  "conn.connecting": "Подключаемся…",
  "conn.live": "На связи",
  "conn.reconnecting": "Связь потеряна, переподключаемся…",
  "conn.closed": "Соединение закрыто",

  "scores.correctness": "Правильность",
  "scores.completeness": "Полнота",
  "scores.clarity": "Ясность",

  "report.title": "Отчёт о собеседовании",
  "report.sharedTitle": "Отчёт о собеседовании (публичная ссылка)",
  "report.score": "Итоговый балл",
  "report.passed": "Пройдено",
  "report.failed": "Не пройдено",
  "report.percentile": "Лучше, чем у {p}% кандидатов этого уровня",
  "report.summary": "Общий отзыв",
  "report.strong": "Сильные темы",
  "report.weak": "Темы, которые стоит подтянуть",
  "report.none": "нет",
  "report.questions": "Вопросы и ответы",
  "report.skipped": "Без ответа: 0 баллов.",
  "report.question": "Вопрос {n}",
  "report.meta": "Уровень: {level} · {date}",
  "report.unfinished": "Это собеседование ещё не завершено.",
  "report.share": "Поделиться",
  "report.shareText": "По ссылке отчёт видно без входа; ваша почта в нём не показывается.",
  "report.shareCreate": "Создать публичную ссылку",
  "report.shareRecreate": "Создать новую ссылку",
  "report.shareExists": "Публичная ссылка уже есть. Новая ссылка заменит старую.",
  "report.shareUrl": "Публичная ссылка",
  "report.shareCopy": "Скопировать",
  "report.shareCopied": "Ссылка скопирована.",
  "report.shareRevoke": "Отозвать ссылку",
  "report.shareRevoked": "Ссылка отозвана: по ней отчёт больше не открывается.",
  "report.notFound": "Ссылка недействительна или отозвана.",

  "history.title": "История собеседований",
  "history.empty": "Собеседований пока нет.",
  "history.answered": "Ответов: {answered} из {total}",
  "history.score": "{score} из 100",
  "history.open": "Отчёт",
  "history.continue": "Продолжить",
  "history.prev": "Назад",
  "history.next": "Дальше",
  "history.page": "Страница {page} из {pages}",
  "status.in-progress": "Идёт",
  "status.completed": "Завершено",
  "status.abandoned": "Прервано",

  "notFound.title": "Страница не найдена",
  "notFound.home": "На главную",

  "error.network": "Нет связи с сервером. Проверьте сеть и повторите.",
  "error.generic": "Что-то пошло не так. Повторите попытку.",
  "error.invalid_credentials": "Неверная почта или пароль.",
  "error.email_not_verified": "Сначала подтвердите адрес почты по ссылке из письма.",
  "error.rate_limited": "Слишком много попыток. Подождите минуту и повторите.",
  "error.invalid_token": "Ссылка недействительна или устарела.",
  "error.invalid_refresh_token": "Сеанс завершён. Войдите снова.",
  "error.unauthorized": "Сеанс завершён. Войдите снова.",
  "error.validation_error": "Проверьте поля формы.",
  "error.no_questions": "Для этого уровня пока нет вопросов.",
  "error.subscription_required": "Бесплатные собеседования в этом месяце закончились.",
  "error.interview_not_found": "Собеседование не найдено.",
  "error.share_not_found": "Ссылка недействительна или отозвана.",
  "error.answer_too_long": "Ответ слишком длинный.",
  "error.not_your_turn": "Дождитесь отзыва на предыдущий ответ.",
  "error.already_answered": "На этот вопрос ответ уже принят.",
  "error.question_mismatch": "Этот вопрос уже закрыт: время на него вышло.",
  "error.interview_closed": "Собеседование уже завершено.",
  "error.unavailable": "Сервис временно недоступен. Повторите чуть позже.",
  "error.socket_fatal": "Не удалось открыть собеседование.",
  "field.email": "Введите адрес почты, например name@example.com.",
  "field.password": "Пароль должен быть не короче 8 символов.",
  "field.age": "Укажите возраст от 14 до 100.",
};

const en = {
  "app.name": "Interview Practice",
  "app.skip": "Skip to content",
  "nav.label": "Main menu",
  "nav.start": "New interview",
  "nav.history": "History",
  "nav.login": "Log in",
  "nav.register": "Sign up",
  "nav.logout": "Log out",
  "lang.toggle": "Русский",
  "lang.toggleLabel": "Переключить интерфейс на русский",
  "lang.ru": "Русский",
  "lang.en": "English",
  "common.loading": "Loading…",
  "common.required": "Fill in this field.",
  "common.optional": "optional",

  "login.title": "Log in",
  "login.email": "Email",
  "login.password": "Password",
  "login.submit": "Log in",
  "login.noAccount": "No account yet?",
  "login.register": "Sign up",
  "login.forgot": "Forgot your password?",
  "login.sessionEnded": "Your session has ended. Please log in again.",

  "register.title": "Sign up",
  "register.password": "Password",
  "register.passwordHint": "At least 8 characters.",
  "register.gender": "Gender",
  "gender.unspecified": "Prefer not to say",
  "gender.female": "Female",
  "gender.male": "Male",
  "gender.other": "Other",
  "register.age": "Age",
  "register.ageHint": "From 14 to 100.",
  "register.language": "Language of interviews and emails",
  "register.marketing": "Send me news and preparation tips",
  "register.submit": "Create the account",
  "register.haveAccount": "Already have an account?",
  "register.doneTitle": "Check your inbox",
  "register.doneText": "We sent a confirmation link to {email}. Open it to get started.",

  "verify.title": "Email confirmation",
  "verify.working": "Confirming your address…",
  "verify.ok": "Your address is confirmed. You can start an interview.",
  "verify.missing": "The link has no confirmation code. Open the whole link from the email.",
  "verify.toLogin": "Log in",
  "verify.toStart": "Go to interviews",

  "forgot.title": "Password recovery",
  "forgot.text": "Enter the address you signed up with and we will send a link to set a new password.",
  "forgot.submit": "Send the link",
  "forgot.done": "If this address has an account, the link is on its way.",

  "reset.title": "New password",
  "reset.password": "New password",
  "reset.confirm": "Repeat the new password",
  "reset.mismatch": "The passwords do not match.",
  "reset.submit": "Change the password",
  "reset.done": "The password is changed. Log in with the new one.",

  "start.title": "New interview",
  "start.level": "Level",
  "level.intern": "Intern",
  "level.junior": "Junior",
  "level.middle": "Middle",
  "levelDesc.intern": "Foundations: data types, simple algorithms, networks and databases.",
  "levelDesc.junior": "Everyday development: Python, databases, concurrency, testing.",
  "levelDesc.middle": "Depth and system design.",
  "start.language": "Interview language",
  "start.info": "{count} questions, {minutes} min per question, pass mark {pass}.",
  "start.submit": "Start the interview",
  "start.unfinished": "You have an unfinished interview ({level}).",
  "start.continue": "Continue",

  "interview.title": "Interview",
  "interview.progress": "Question {n} of {total}",
  "interview.questions": "Questions",
  "interview.timeLeft": "Time left",
  "interview.timeUp": "Time is up: sending your draft.",
  "interview.minuteLeft": "One minute left.",
  "interview.answerLabel": "Your answer",
  "interview.answerHint": "Ctrl+Enter sends the answer. Your draft is saved every few seconds.",
  "interview.emptyAnswer": "Write an answer before sending it.",
  "interview.send": "Send the answer",
  "interview.sending": "Sending the answer…",
  "interview.queued": "Offline: the answer will go out as soon as the connection is back.",
  "interview.evaluating": "Evaluating your answer…",
  "interview.yourAnswer": "Your answer",
  "interview.noAnswer": "(no answer)",
  "interview.auto": "Sent automatically when the time ran out.",
  "interview.feedback": "Feedback",
  "interview.score": "Score: {score} of 10",
  "interview.finish": "Finish the interview",
  "interview.finishConfirm": "Finish now? Unanswered questions score 0.",
  "interview.finishYes": "Yes, finish",
  "interview.finishNo": "Keep going",
  "interview.finishing": "Finishing…",
  "interview.newQuestion": "Question {n} of {total}.",
  "interview.completed": "The interview is complete.",
  "interview.result": "Result: {score} of 100.",
  "interview.abandoned": "The interview was closed after a long time without activity.",
  "interview.viewReport": "Open the report",
  "conn.connecting": "Connecting…",
  "conn.live": "Connected",
  "conn.reconnecting": "Connection lost, reconnecting…",
  "conn.closed": "Connection closed",

  "scores.correctness": "Correctness",
  "scores.completeness": "Completeness",
  "scores.clarity": "Clarity",

  "report.title": "Interview report",
  "report.sharedTitle": "Interview report (public link)",
  "report.score": "Overall score",
  "report.passed": "Passed",
  "report.failed": "Not passed",
  "report.percentile": "Better than {p}% of candidates at this level",
  "report.summary": "Summary",
  "report.strong": "Strong topics",
  "report.weak": "Topics to work on",
  "report.none": "none",
  "report.questions": "Questions and answers",
  "report.skipped": "Not answered: scored 0.",
  "report.question": "Question {n}",
  "report.meta": "Level: {level} · {date}",
  "report.unfinished": "This interview is not finished yet.",
  "report.share": "Share",
  "report.shareText": "Anyone with the link sees this report without logging in; your email is not shown.",
  "report.shareCreate": "Create a public link",
  "report.shareRecreate": "Create a new link",
  "report.shareExists": "A public link exists. A new link replaces the old one.",
  "report.shareUrl": "Public link",
  "report.shareCopy": "Copy",
  "report.shareCopied": "The link is copied.",
  "report.shareRevoke": "Revoke the link",
  "report.shareRevoked": "The link is revoked: it no longer opens the report.",
  "report.notFound": "This link is invalid or was revoked.",

  "history.title": "Interview history",
  "history.empty": "No interviews yet.",
  "history.answered": "Answered: {answered} of {total}",
  "history.score": "{score} of 100",
  "history.open": "Report",
  "history.continue": "Continue",
  "history.prev": "Previous",
  "history.next": "Next",
  "history.page": "Page {page} of {pages}",
  "status.in-progress": "In progress",
  "status.completed": "Completed",
  "status.abandoned": "Abandoned",

  "notFound.title": "Page not found",
  "notFound.home": "Go home",

  "error.network": "Cannot reach the server. Check the network and retry.",
  "error.generic": "Something went wrong. Please retry.",
  "error.invalid_credentials": "Wrong email or password.",
  "error.email_not_verified": "Confirm your email address first with the link we sent.",
  "error.rate_limited": "Too many attempts. Wait a minute and retry.",
  "error.invalid_token": "The link is invalid or has expired.",
  "error.invalid_refresh_token": "Your session has ended. Please log in again.",
  "error.unauthorized": "Your session has ended. Please log in again.",
  "error.validation_error": "Check the form fields.",
  "error.no_questions": "There are no questions for this level yet.",
  "error.subscription_required": "You have used this month's free interviews.",
  "error.interview_not_found": "No such interview.",
  "error.share_not_found": "This link is invalid or was revoked.",
  "error.answer_too_long": "The answer is too long.",
  "error.not_your_turn": "Wait for the feedback on the previous answer.",
  "error.already_answered": "This question already has an answer.",
  "error.question_mismatch": "This question is closed: its time ran out.",
  "error.interview_closed": "The interview is already over.",
  "error.unavailable": "The service is briefly unavailable. Retry shortly.",
  "error.socket_fatal": "The interview could not be opened.",
  "field.email": "Enter an email address such as name@example.com.",
  "field.password": "The password must be at least 8 characters.",
  "field.age": "Enter an age from 14 to 100.",
};

const DICTIONARIES = { ru, en };
const listeners = new Set();
let current = detect();

function detect() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage can be disabled; the navigator language still works.
  }
  if (LANGUAGES.includes(saved)) return saved;
  const preferred = (navigator.languages || [navigator.language || ""]).map((l) =>
    String(l).slice(0, 2).toLowerCase(),
  );
  return preferred.find((l) => LANGUAGES.includes(l)) || "ru";
}

export function lang() {
  return current;
}

export function has(key) {
  return key in DICTIONARIES[current];
}

/** The text for `key` in the current language, with `{name}` placeholders filled from `args`. */
export function t(key, args = {}) {
  const text = DICTIONARIES[current][key] ?? DICTIONARIES.ru[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in args ? String(args[name]) : `{${name}}`));
}

export function setLang(next) {
  if (!LANGUAGES.includes(next) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not remembered across visits; fine.
  }
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return new Intl.DateTimeFormat(current === "ru" ? "ru-RU" : "en-GB", {
    dateStyle: "medium",
    timeStyle: "short",
  }).format(date);
}

/** Fill an element's text from its data-i18n key and arguments (dates and levels are localized). */
export function renderText(el) {
  const args = el.dataset.i18nArgs ? JSON.parse(el.dataset.i18nArgs) : {};
  if (el.dataset.i18nDate) args.date = formatDate(el.dataset.i18nDate);
  if (el.dataset.i18nLevel) args.level = t(`level.${el.dataset.i18nLevel}`);
  el.textContent = t(el.dataset.i18n, args);
}

/** Re-translate every element under `root` marked with data-i18n (text) or data-i18n-attr. */
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) renderText(el);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
  for (const el of root.querySelectorAll("[data-date]")) {
    el.textContent = formatDate(el.dataset.date);
  }
}
