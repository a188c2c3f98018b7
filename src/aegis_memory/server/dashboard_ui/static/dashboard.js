/*
 * Aegis Memory dashboard: sign-in, the key, and the wiring between htmx and the server.
 *
 * The API key lives in sessionStorage only: it is gone when the tab closes, it is never put
 * in a URL or a cookie, and it reaches the server only as an Authorization header that this
 * script adds to each htmx request. Loaded in <head>, before htmx, so that a page opened
 * without a key goes to sign-in before any request is made.
 */
(function () {
  "use strict";

  var KEY = "aegis.key";
  var WHO = "aegis.identity";
  var NOTICE = "aegis.signin-notice";
  var NEXT = "aegis.next";
  var THEME = "aegis.theme";
  var SIGNIN = "/dashboard/signin";
  var CONTEXT_PARAMS = ["ns", "agent"];
  var onSignin = location.pathname === SIGNIN;

  function store(area) {
    try {
      return window[area];
    } catch (e) {
      return null; // storage disabled: the dashboard cannot keep a key
    }
  }

  var session = store("sessionStorage");
  var local = store("localStorage");

  function currentKey() {
    return session ? session.getItem(KEY) : null;
  }

  // ---------------------------------------------------------------- theme (before first paint)

  function applyTheme(theme) {
    var root = document.documentElement;
    if (theme === "light" || theme === "dark") {
      root.setAttribute("data-theme", theme);
    } else {
      root.removeAttribute("data-theme");
    }
  }

  function effectiveTheme() {
    var chosen = document.documentElement.getAttribute("data-theme");
    if (chosen) {
      return chosen;
    }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches
      ? "dark" : "light";
  }

  applyTheme(local ? local.getItem(THEME) : null);

  // ---------------------------------------------------------------- sign-in and sign-out

  function goToSignin(notice) {
    if (session) {
      session.removeItem(KEY);
      session.removeItem(WHO);
      if (notice) {
        session.setItem(NOTICE, notice);
      }
      if (!onSignin) {
        session.setItem(NEXT, location.pathname + location.search);
      }
    }
    location.replace(SIGNIN);
  }

  if (!onSignin && !currentKey()) {
    goToSignin(null);
  }

  function safeNext() {
    var next = session ? session.getItem(NEXT) : null;
    if (session) {
      session.removeItem(NEXT);
    }
    // Only our own pages: never an open redirect to another site.
    if (next && /^\/dashboard(\/|\?|$)/.test(next) && next.indexOf("//") === -1 &&
        next.indexOf(SIGNIN) !== 0) {
      return next;
    }
    return "/dashboard";
  }

  function showSigninError(text) {
    var box = document.getElementById("signin-error");
    box.textContent = text;
    box.hidden = false;
    var input = document.getElementById("api-key");
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  function signIn(event) {
    event.preventDefault();
    var form = event.target;
    var input = document.getElementById("api-key");
    var key = input.value.trim();
    var button = form.querySelector("button[type=submit]");
    if (!key) {
      showSigninError("Enter an API key.");
      return;
    }
    if (!session) {
      showSigninError("This browser blocks session storage, where the dashboard keeps the key.");
      return;
    }
    button.disabled = true;
    fetch("/dashboard/api/whoami", {
      headers: { Authorization: "Bearer " + key },
      cache: "no-store",
      credentials: "omit",
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        button.disabled = false;
        if (response.ok) {
          session.setItem(KEY, key);
          session.setItem(WHO, JSON.stringify(body));
          input.value = "";
          location.assign(safeNext());
        } else if (response.status === 401) {
          showSigninError("Sign-in failed: this API key was not accepted. Check that you " +
            "copied the whole key and that it has not been revoked or expired.");
        } else if (response.status === 429) {
          showSigninError("Too many failed sign-ins from this address. " +
            (body.detail || "Wait a minute and try again."));
        } else {
          showSigninError("Sign-in failed: " + (body.detail || ("HTTP " + response.status)));
        }
      });
    }).catch(function () {
      button.disabled = false;
      showSigninError("Could not reach the Aegis server. Is it running?");
    });
  }

  // ---------------------------------------------------------------- htmx wiring

  document.addEventListener("htmx:configRequest", function (event) {
    var key = currentKey();
    if (!key) {
      event.preventDefault(); // no key: no request; the page is on its way to sign-in
      goToSignin(null);
      return;
    }
    event.detail.headers.Authorization = "Bearer " + key;
    // The namespace and agent being looked at come from the page's own URL.
    var query = new URLSearchParams(location.search);
    CONTEXT_PARAMS.forEach(function (name) {
      var value = query.get(name);
      if (value && event.detail.parameters[name] === undefined) {
        event.detail.parameters[name] = value;
      }
    });
  });

  function alertHtml(text) {
    var box = document.createElement("div");
    box.className = "alert alert-error";
    box.setAttribute("role", "alert");
    box.textContent = text;
    return box.outerHTML;
  }

  function errorText(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.detail) {
        return String(body.detail);
      }
    } catch (e) {
      // not JSON: fall through
    }
    return "The server answered " + xhr.status + ".";
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status < 400) {
      return;
    }
    if (xhr.status === 401) {
      event.detail.shouldSwap = false;
      goToSignin("Your key was not accepted any more (revoked or expired?): sign in again.");
      return;
    }
    document.querySelectorAll("dialog[open]").forEach(function (dialog) { dialog.close(); });
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    var holder = elt && elt.closest && elt.closest("[data-error-target]");
    if (holder) {
      var target = document.querySelector(holder.getAttribute("data-error-target"));
      if (target) {
        event.detail.target = target;
      }
    }
    event.detail.shouldSwap = true;
    event.detail.isError = false;
    event.detail.serverResponse = alertHtml(errorText(xhr));
  });

  document.addEventListener("htmx:sendError", function (event) {
    var target = event.detail.target;
    if (target) {
      target.innerHTML = alertHtml("Could not reach the Aegis server. Is it running?");
    }
  });

  // ---------------------------------------------------------------- page behaviour

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (dialog && dialog.showModal) {
        dialog.showModal();
      }
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      closer.closest("dialog").close();
      return;
    }
    if (event.target.closest("#sign-out")) {
      if (session) {
        session.clear(); // the key, and anything else this tab kept for the dashboard
        session.setItem(NOTICE, "You are signed out. The key was removed from this tab.");
      }
      location.assign(SIGNIN);
      return;
    }
    if (event.target.closest("#theme-toggle")) {
      var next = effectiveTheme() === "dark" ? "light" : "dark";
      applyTheme(next);
      if (local) {
        local.setItem(THEME, next);
      }
      syncThemeButton();
    }
  });

  // A swapped-in table is not announced by screen readers; its one-line summary is, through
  // a live region that stays on the page.
  document.addEventListener("htmx:afterSwap", function (event) {
    event.detail.target.removeAttribute("aria-busy"); // loaded: assistive tech may read it
    var status = document.getElementById("table-status");
    var count = document.getElementById("memory-count");
    if (status && count && event.detail.target.id === "memory-table") {
      status.textContent = count.textContent.replace(/\s+/g, " ").trim();
    }
  });

  function syncThemeButton() {
    var button = document.getElementById("theme-toggle");
    if (button) {
      var dark = effectiveTheme() === "dark";
      button.setAttribute("aria-pressed", dark ? "true" : "false");
      button.querySelector(".theme-label").textContent = dark ? "Light mode" : "Dark mode";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncThemeButton();
    var form = document.getElementById("signin-form");
    if (form) {
      form.addEventListener("submit", signIn);
      var notice = session ? session.getItem(NOTICE) : null;
      if (notice) {
        session.removeItem(NOTICE);
        var box = document.getElementById("signin-notice");
        box.textContent = notice;
        box.hidden = false;
      }
      if (currentKey()) {
        location.replace(safeNext()); // already signed in in this tab
      }
    }
  });
})();
