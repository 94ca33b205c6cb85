import type { ResidencyZone } from './vocabulary.js';

/**
 * The region table: what the law of a place says about face recognition, where data must stay and how
 * long face templates may be kept. Data, not logic — `region-rules.ts` looks it up and `decide.ts` applies
 * it together with our own promises (which are never weaker than the law; see decide.ts).
 *
 * Keys are ISO 3166-1 alpha-2 (`DE`) or ISO 3166-2 (`US-IL`) codes. A subdivision entry wins over its
 * country; a code that is not here gets STRICTEST_RULE (region-rules.ts).
 *
 * Not representable here, on purpose: municipal rules. Portland, Oregon bans face recognition by private
 * entities in places of public accommodation (Portland City Code ch. 34.10, 2021) and New York City
 * requires signage for commercial establishments (NYC Admin. Code §22-1201 ff.). A hub's region is a
 * state, not a city, so those cannot be keyed; US-OR and US-NY fall back to the (conservative) `US` rule.
 */

/** How a region treats face recognition of people who walk past a camera. */
export type FaceRecognitionRule = 'prohibited' | 'explicit-consent' | 'allowed';

/**
 * How a region treats object detection on the hub: labelling what moved as a person, an animal or a
 * vehicle, with a box and a score. Every shipped region allows it (see OBJECT_DETECTION below).
 */
export type ObjectDetectionRule = 'allowed' | 'prohibited';

/** Whether personal data may leave the region's residency zone. */
export type CrossBorderRule = 'allowed' | 'needs-consent' | 'forbidden';

/** The legal source of a rule: a law, the article or section, and where to read it. */
export interface Citation {
  law: string;
  section: string;
  url: string;
}

/** The rules for one region. */
export interface RegionRule {
  faceRecognition: FaceRecognitionRule;
  objectDetection: ObjectDetectionRule;
  /** Where uploads must be stored (picks the upload endpoint). */
  residencyZone: ResidencyZone;
  /** Uploads to any other zone than `residencyZone`. */
  crossBorder: CrossBorderRule;
  /** Longest time a face template may be kept; null when the law names no figure (purpose-bound only). */
  maxTemplateRetentionDays: number | null;
  citation: Citation;
}

/**
 * Object detection is allowed in every shipped region, including the strictest default, because it
 * identifies no one. What it adds to footage the household already records is a group label (`person`,
 * `animal`, `vehicle`), a COCO class, a score and a box: nothing that allows or confirms the unique
 * identification of a person, no face template, nothing kept that describes what a person looks like.
 * - GDPR: biometric data is data from technical processing of a person's physical characteristics "which
 *   allow or confirm the unique identification" of that person (Art. 4(14)); only that is special-category
 *   data under Art. 9. The EDPB's video guidelines say the same of video: footage is not biometric data
 *   per se, and a system that tells categories of people apart without uniquely identifying anyone is not
 *   Art. 9 processing (Guidelines 3/2019 on processing of personal data through video devices, §5.1).
 * - BIPA's "biometric identifier" is a retina or iris scan, fingerprint, voiceprint, or scan of hand or
 *   face geometry (740 ILCS 14/10); Texas CUBI (§503.001(a)) and Washington (RCW 19.375.010(1)) define it
 *   the same way. A box around a person is none of those.
 * - PIPL: the sensitive category is biometric recognition (Art. 28); a class label recognises no one.
 * The footage itself stays under whatever rules cover the camera (recording consent, residency, uploads),
 * unchanged: the label travels only in the age-sealed event. Like motion detection, it needs no consent of
 * its own, and withdrawing one does not stop it; a region row can still say `prohibited`, and then the
 * gate refuses it (decide.ts, reason `region-prohibits-object-detection`).
 */
const OBJECT_DETECTION: ObjectDetectionRule = 'allowed';

const GDPR: Citation = {
  law: 'Regulation (EU) 2016/679 (GDPR)',
  section: 'Art. 9(1) and 9(2)(a) (biometric data for unique identification: explicit consent); Chapter V, Art. 49(1)(a) (transfers to third countries)',
  url: 'https://eur-lex.europa.eu/eli/reg/2016/679/oj',
};

/**
 * GDPR applies although the hub is in a home: a camera that also covers public space is not a "purely
 * personal or household activity" (Art. 2(2)(c); CJEU C-212/13 Ryneš, 2014). Retention: no figure, only
 * storage limitation (Art. 5(1)(e)).
 */
const GDPR_RULE: RegionRule = {
  faceRecognition: 'explicit-consent',
  objectDetection: OBJECT_DETECTION,
  residencyZone: 'eu',
  crossBorder: 'needs-consent',
  maxTemplateRetentionDays: null,
  citation: GDPR,
};

/** EU member states (Greece is `GR` in ISO 3166-1, `EL` only in EU usage) plus the EEA's IS, LI, NO. */
const EU_EEA = [
  'AT', 'BE', 'BG', 'HR', 'CY', 'CZ', 'DK', 'EE', 'FI', 'FR', 'DE', 'GR', 'HU', 'IE', 'IT', 'LV', 'LT', 'LU',
  'MT', 'NL', 'PL', 'PT', 'RO', 'SK', 'SI', 'ES', 'SE', 'IS', 'LI', 'NO',
] as const;

/**
 * US states without a biometric statute of their own get this. Conservative: `explicit-consent`, not
 * `allowed`, because the comprehensive state privacy laws treat biometric data for identification as
 * sensitive data that needs opt-in consent (e.g. Va. Code §59.1-578(A)(5), Conn. Gen. Stat. §42-520(a)(4)),
 * and the FTC treats unfair biometric practices under Section 5 of the FTC Act. No federal residency
 * rule for consumer data, so cross-border transfers are legally allowed (our own promise still asks).
 */
const US_DEFAULT: RegionRule = {
  faceRecognition: 'explicit-consent',
  objectDetection: OBJECT_DETECTION,
  residencyZone: 'us',
  crossBorder: 'allowed',
  maxTemplateRetentionDays: null,
  citation: {
    law: 'FTC Act §5 (15 U.S.C. §45); FTC Policy Statement on Biometric Information (May 18, 2023)',
    section: 'Policy Statement, part III (unfair practices: collecting biometric information without notice and consent)',
    url: 'https://www.ftc.gov/legal-library/browse/policy-statement-federal-trade-commission-biometric-information-section-5-federal-trade-commission-act',
  },
};

const US_STATE = (over: Partial<RegionRule> & Pick<RegionRule, 'citation'>): RegionRule => ({ ...US_DEFAULT, ...over });

/** The table. Frozen: rules change by a reviewed edit here, never at run time. */
export const REGION_RULES: Readonly<Record<string, Readonly<RegionRule>>> = Object.freeze({
  US: US_DEFAULT,
  // BIPA: informed written release before collection (§15(b)); destroy when the purpose is satisfied or
  // within 3 years of the individual's last interaction, whichever comes first (§15(a)) → 3 × 365 days.
  'US-IL': US_STATE({
    maxTemplateRetentionDays: 1095,
    citation: {
      law: 'Illinois Biometric Information Privacy Act (BIPA)',
      section: '740 ILCS 14/15(a)-(b)',
      url: 'https://www.ilga.gov/legislation/ilcs/ilcs3.asp?ActID=3004&ChapterID=57',
    },
  }),
  // CUBI: consent before capture (§503.001(b)); destroy within a reasonable time, no later than the first
  // anniversary of the date the purpose expires (§503.001(c)(3)) → 365 days.
  'US-TX': US_STATE({
    maxTemplateRetentionDays: 365,
    citation: {
      law: 'Texas Capture or Use of Biometric Identifier Act (CUBI)',
      section: 'Tex. Bus. & Com. Code §503.001(b), (c)(3)',
      url: 'https://statutes.capitol.texas.gov/Docs/BC/htm/BC.503.htm',
    },
  }),
  // Notice and consent before enrolling a biometric identifier (RCW 19.375.020(1)); keep no longer than
  // reasonably necessary (19.375.020(4)(b)): no figure.
  'US-WA': US_STATE({
    citation: {
      law: 'Washington biometric identifiers law',
      section: 'RCW 19.375.020',
      url: 'https://app.leg.wa.gov/RCW/default.aspx?cite=19.375.020',
    },
  }),
  // Colorado Privacy Act biometric amendment (HB 24-1130, in force 1 July 2025): consent; delete at the
  // latest 24 months after the individual's last interaction → 730 days.
  'US-CO': US_STATE({
    maxTemplateRetentionDays: 730,
    citation: {
      law: 'Colorado Privacy Act, biometric identifiers (HB 24-1130)',
      section: 'C.R.S. §6-1-1314',
      url: 'https://leg.colorado.gov/bills/hb24-1130',
    },
  }),
  // CPRA: biometric data for identification is sensitive personal information (§1798.140(ae)); the law
  // only gives a right to limit (§1798.121). Conservative: we ask first.
  'US-CA': US_STATE({
    citation: {
      law: 'California Consumer Privacy Act as amended by the CPRA',
      section: 'Cal. Civ. Code §1798.121, §1798.140(ae)',
      url: 'https://leginfo.legislature.ca.gov/faces/codes_displaySection.xhtml?lawCode=CIV&sectionNum=1798.121',
    },
  }),
  ...Object.fromEntries(EU_EEA.map((code) => [code, GDPR_RULE])),
  // The UK recognises the EEA as adequate (Data Protection Act 2018, Sch. 21 para. 5), so the `eu` zone
  // is home for UK data; anything else is a Chapter V transfer.
  GB: {
    ...GDPR_RULE,
    citation: {
      law: 'UK GDPR (retained Regulation (EU) 2016/679) and Data Protection Act 2018',
      section: 'Art. 9(2)(a); Chapter V, Art. 49(1)(a)',
      url: 'https://www.legislation.gov.uk/eur/2016/679/article/9',
    },
  },
  // Biometric data is sensitive (FADP Art. 5(c)(4)) and needs explicit consent (Art. 6(7)(a)); the EU/EEA
  // are adequate destinations (Data Protection Ordinance, Annex 1), so `eu` is home.
  CH: {
    ...GDPR_RULE,
    citation: {
      law: 'Swiss Federal Act on Data Protection (FADP, SR 235.1)',
      section: 'Art. 5(c)(4), Art. 6(7)(a); Art. 17(1)(a) (transfers abroad)',
      url: 'https://www.fedlex.admin.ch/eli/cc/2022/491/en',
    },
  },
  // PIPL: biometric data is sensitive personal information (Art. 28) that needs separate consent (Art. 29).
  // Transfers abroad need a CAC security assessment, certification or standard contract plus separate
  // consent (Arts. 38-39), and Art. 40 keeps data in China for large processors. A home hub can do none
  // of that, so: forbidden. Retention: shortest period necessary (Art. 19), no figure.
  CN: {
    faceRecognition: 'explicit-consent',
    objectDetection: OBJECT_DETECTION,
    residencyZone: 'cn',
    crossBorder: 'forbidden',
    maxTemplateRetentionDays: null,
    citation: {
      law: 'Personal Information Protection Law of the PRC (PIPL)',
      section: 'Arts. 28-29 (sensitive personal information, separate consent); Arts. 38-40 (cross-border provision)',
      url: 'http://en.npc.gov.cn.cdurl.cn/2021-12/29/c_694559.htm',
    },
  },
} satisfies Record<string, RegionRule>);

/**
 * The rule for a region the table does not know (or a malformed code). Strictest on every axis that
 * identifies people or moves their data:
 * - face recognition prohibited (and no template may be kept: 0 days);
 * - object detection allowed, as motion detection is: it identifies no one (see OBJECT_DETECTION), so no
 *   law we know of restricts it, and refusing it would only bring back an alert for every passing cat;
 * - residency `global` with cross-border `forbidden`: we do not know which jurisdiction the hub is in, so
 *   no zone that belongs to a jurisdiction (eu, us, cn) is "home"; uploads, when consented, may only go
 *   to the `global` endpoint, the same place the uplink's old placeholder sent unknown regions. Denying
 *   every upload would be stricter still, but would turn a missing table row into a silent loss of the
 *   service the household consented to; clips are age-encrypted to the household either way.
 *
 * ISO 3166 reserves `ZZ` for user assignment and CLDR uses it for "Unknown Region", hence `matched: 'ZZ'`.
 */
export const STRICTEST_RULE: Readonly<RegionRule> = Object.freeze({
  faceRecognition: 'prohibited',
  objectDetection: OBJECT_DETECTION,
  residencyZone: 'global',
  crossBorder: 'forbidden',
  maxTemplateRetentionDays: 0,
  citation: {
    law: 'none known for this region: camveil default (docs/architecture.md, "Policy": an unknown region gets the strictest rules)',
    section: 'ISO 3166 user-assigned code ZZ ("Unknown Region")',
    url: 'https://www.iso.org/iso-3166-country-codes.html',
  },
});
