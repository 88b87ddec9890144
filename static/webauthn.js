// Passkeys and security keys (WebAuthn) on the hosted pages. No inline script: forms carry
// their options in data-webauthn-options (JSON made by the server, py_webauthn) and say what
// to do in data-webauthn:
//   "register"      navigator.credentials.create() when the form is submitted
//   "authenticate"  navigator.credentials.get() when the form is submitted (second factor)
//   "sign-in"       the sign-in page: passkey autofill (conditional mediation) on the Email
//                   field, and the "Sign in with a passkey" button
// The browser's answer goes into the form's hidden "credential" field as JSON, with binary
// values in base64url, and the form is posted like any other: the server verifies it.
(function () {
  "use strict";

  // -- base64url (RFC 4648 5) without padding ---------------------------------------------
  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromBase64url(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var text = atob(base64), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes.buffer;
  }

  // -- options from the server's JSON -----------------------------------------------------
  function descriptors(list) {
    return (list || []).map(function (item) {
      var out = { type: item.type, id: fromBase64url(item.id) };
      if (item.transports) out.transports = item.transports;
      return out;
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = fromBase64url(json.challenge);
    options.user = Object.assign({}, json.user, { id: fromBase64url(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = fromBase64url(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  // -- the browser's answer as JSON (WebAuthn L3 "RegistrationResponseJSON") --------------
  function credentialJSON(credential) {
    var response = credential.response, out = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      out.response.attestationObject = toBase64url(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(response.authenticatorData);
      out.response.signature = toBase64url(response.signature);
      if (response.userHandle) out.response.userHandle = toBase64url(response.userHandle);
    }
    return JSON.stringify(out);
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials);
  }

  // -- messages ---------------------------------------------------------------------------
  function explain(error, registering) {
    if (error && error.name === "InvalidStateError" && registering) {
      return "This passkey is already set up for your account. Choose another one.";
    }
    if (error && error.name === "NotAllowedError") {
      return registering
        ? "The passkey wasn't created: it was cancelled or took too long. Try again."
        : "No passkey was used: it was cancelled or took too long. Try again.";
    }
    if (error && error.name === "SecurityError") {
      return "Passkeys can't be used on this address of the sign-in page.";
    }
    return "Your browser couldn't use a passkey. Try again, or use another method.";
  }

  function showError(form, message) {
    var box = form.querySelector("[data-webauthn-error]");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  function options(form) {
    return JSON.parse(form.getAttribute("data-webauthn-options"));
  }

  function send(form, credential) {
    form.querySelector("input[name=credential]").value = credentialJSON(credential);
    form.submit();
  }

  // -- registering and second factor: on the form's submission ----------------------------
  function onSubmit(form, registering) {
    var busy = false;
    form.addEventListener("submit", function (event) {
      if (form.querySelector("input[name=credential]").value) return;
      event.preventDefault();
      if (busy) return;
      if (!supported()) {
        showError(form, "This browser can't use passkeys. Use another method.");
        return;
      }
      busy = true;
      var json = options(form);
      var call = registering
        ? navigator.credentials.create({ publicKey: creationOptions(json) })
        : navigator.credentials.get({ publicKey: requestOptions(json) });
      call.then(function (credential) {
        send(form, credential);
      }, function (error) {
        busy = false;
        showError(form, explain(error, registering));
      });
    });
  }

  // -- the sign-in page: autofill and the button ------------------------------------------
  function signIn(form) {
    var button = form.querySelector("[data-webauthn-start]");
    var pending = null, autofill = false;
    if (!supported()) return;  // the button stays hidden: the password form is untouched

    function get(mediation) {
      if (pending) pending.abort();
      var controller = new AbortController();
      pending = controller;
      var request = { publicKey: requestOptions(options(form)), signal: controller.signal };
      if (mediation) request.mediation = mediation;
      return navigator.credentials.get(request).then(function (credential) {
        if (credential) send(form, credential);
      }, function (error) {
        if (error && error.name === "AbortError") return;  // replaced by another request
        if (mediation === "conditional") return;
        showError(form, explain(error, false));
        if (autofill) get("conditional");  // the autofill offers passkeys again
      });
    }

    if (button) {
      button.hidden = false;
      button.addEventListener("click", function () { get(null); });
    }
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        autofill = available;
        if (available) get("conditional");
      }, function () {});
    }
  }

  document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
    var mode = form.getAttribute("data-webauthn");
    if (mode === "register") onSubmit(form, true);
    else if (mode === "authenticate") onSubmit(form, false);
    else if (mode === "sign-in") signIn(form);
  });
})();
